"""The job spec: what a user POSTs to /jobs and what `python -m tricks run` reads.

Pydantic v2 models shared by the API (validation at the edge) and the worker
(trusted input). No torch import here: the API process must stay torch-free.

Every number is bounded and finite; unknown fields are rejected. Checks that
need the dataset (its size, shape, kind, number of classes) live in
`check_against_dataset`, which the API calls once it knows the dataset.

The models live in a few modules (base, parts, schedule, regularization, job, dataset);
import them from here: `from tricks.spec import JobSpec, ScheduleSpec, ...`.
"""

from tricks.spec.base import (  # noqa: F401
    MAX_BATCH,
    MAX_EPOCHS,
    SpecError,
    Strict,
    validation_errors,
)
from tricks.spec.dataset import (  # noqa: F401
    DatasetMeta,
    check_against_dataset,
    dataset_meta_after_split,
    split_sizes,
    steps_per_epoch,
)
from tricks.spec.image_archs import (  # noqa: F401
    IMAGE_ARCHS,
    AirbenchSpec,
    PreActResNet18Spec,
    ResNet18Spec,
    ResNet34Spec,
    WideResNetSpec,
)
from tricks.spec.job import (  # noqa: F401
    JobSpec,
    check_schedule,
)
from tricks.spec.parts import (  # noqa: F401
    AdamSpec,
    AdamWSpec,
    CNNSpec,
    DataSpec,
    MLPSpec,
    ModelSpec,
    OptimizerSpec,
    ResNetSpec,
    SGDSpec,
)
from tricks.spec.regularization import (  # noqa: F401
    AugmentSpec,
    CutMixSpec,
    EarlyStoppingSpec,
    LRRangeSpec,
    MixupSpec,
    RegularizationSpec,
    TrainingSpec,
)
from tricks.spec.schedule import (  # noqa: F401
    ConstantDecay,
    CosineDecay,
    CosineRestartsDecay,
    DecaySpec,
    ExponentialDecay,
    InverseSqrtDecay,
    LinearDecay,
    MultiStepDecay,
    OneCycleDecay,
    PolynomialDecay,
    ScheduleSpec,
    StepDecay,
    WarmupSpec,
    WSDDecay,
)
