"""OpenAPI request examples."""

JOB_SPEC = {
    "name": "digits: warmup + cosine + mixup",
    "data": {"dataset": "digits", "val_fraction": 0.2},
    "model": {"arch": "mlp", "hidden": [256, 128], "batch_norm": False},
    "optimizer": {
        "name": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-4,
        "no_bias_decay": True,
    },
    "schedule": {
        "warmup": {"epochs": 2, "start_lr": 0.0},
        "decay": {"kind": "cosine", "min_lr": 0.0},
        "per": "batch",
    },
    "regularization": {
        "l1": 0.0,
        "l2": 0.0,
        "dropout": 0.2,
        "label_smoothing": 0.1,
        "mixup": {"alpha": 0.2},
        "augment": {"hflip": False, "rotate": 10, "crop_padding": 1, "noise_std": 0.0},
    },
    "training": {"epochs": 20, "batch_size": 64, "seed": 0, "device": "auto", "precision": "auto"},
}

JOB_EXAMPLES = {
    "digits": {"summary": "digits: warm-up + cosine + mixup", "value": JOB_SPEC},
    "minimal": {
        "summary": "only the dataset (every other section has defaults)",
        "value": {"data": {"dataset": "moons"}},
    },
}

PREVIEW_EXAMPLES = {
    "warmup_cosine": {
        "summary": "2 epochs of linear warm-up, then cosine to 0",
        "value": {
            "lr": 0.1,
            "epochs": 20,
            "steps_per_epoch": 23,
            "schedule": {
                "warmup": {"epochs": 2, "start_lr": 0.0},
                "decay": {"kind": "cosine", "min_lr": 0.0},
                "per": "batch",
            },
        },
    },
    "multistep": {
        "summary": "torch MultiStepLR at epochs 10 and 15, per epoch",
        "value": {
            "lr": 0.1,
            "epochs": 20,
            "steps_per_epoch": 23,
            "schedule": {
                "decay": {"kind": "multistep", "milestones": [10, 15], "gamma": 0.1},
                "per": "epoch",
            },
            "max_points": 200,
        },
    },
}
