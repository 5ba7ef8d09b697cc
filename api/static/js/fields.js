// The designer's layout: which spec paths appear in which section, in what order,
// under what label. Everything the spec itself defines (enum values, the variants
// of a union, bounds, defaults, descriptions, which fields a decay kind or an
// optimizer has) comes from the OpenAPI document: formfields.js fills it in.
//
// A field:
// - key: the form's name for it (input id f-<key>); unique.
// - path: the spec path it writes. A path that crosses a discriminated union
//   (model, optimizer, schedule.decay) shows only while the chosen variant has it.
// - type: for a path, narrows it to the variants where the schema has that type
//   (model.hidden is a list for mlp, one int for cnn); for a path-less switch, its input.
// - def: the default where the schema carries none (pydantic leaves default_factory
//   values out of it); the schema's default wins when it has one.
// - when(v): an extra condition on other fields, v(key) → their current value.
// - step: the number input's step ("any" for floats, 1 for ints, unless given).
// Keys starting with "_" have no path: they switch optional sections on and off
// and carry `errPath`, the spec path a 422 for that section names (SWITCHES).

const warmup = (...modes) => (v) => modes.includes(v("_warmup"));
const on = (key) => (v) => v(key);

export const SECTIONS = [
  {
    title: "Job",
    fields: [{ key: "name", path: "name", label: "Name" }],
  },
  {
    title: "Data",
    fields: [
      // options from GET /datasets (built-ins and uploads), not from the schema
      { key: "data.dataset", path: "data.dataset", label: "Dataset", select: true },
      { key: "data.val_fraction", path: "data.val_fraction", label: "Val fraction", step: 0.05 },
      { key: "data.standardize", path: "data.standardize", label: "Standardize" },
    ],
  },
  {
    title: "Model",
    fields: [
      { key: "model.arch", path: "model.arch", label: "Architecture", def: "mlp" },
      { key: "mlp.hidden", path: "model.hidden", type: "intlist", label: "Hidden widths", def: [256, 128] },
      { key: "cnn.channels", path: "model.channels", label: "Channels", def: [32, 64] },
      { key: "cnn.kernel_size", path: "model.kernel_size", label: "Kernel size" },
      { key: "cnn.hidden", path: "model.hidden", type: "int", label: "Dense width" },
      { key: "resnet.width", path: "model.width", label: "Width" },
      { key: "resnet.blocks", path: "model.blocks", label: "Blocks", def: [1, 1] },
      { key: "resnet.zero_init_residual", path: "model.zero_init_residual", label: "Zero-init residual" },
      { key: "model.batch_norm", path: "model.batch_norm", label: "Batch norm" },
    ],
  },
  {
    title: "Optimizer",
    fields: [
      { key: "optimizer.name", path: "optimizer.name", label: "Optimizer", def: "sgd" },
      { key: "optimizer.lr", path: "optimizer.lr", label: "Peak lr (lr0)" },
      { key: "optimizer.momentum", path: "optimizer.momentum", label: "Momentum", step: 0.01 },
      { key: "optimizer.nesterov", path: "optimizer.nesterov", label: "Nesterov" },
      { key: "optimizer.betas", path: "optimizer.betas", label: "Betas" },
      { key: "optimizer.eps", path: "optimizer.eps", label: "Eps" },
      { key: "optimizer.weight_decay", path: "optimizer.weight_decay", label: "Weight decay" },
      { key: "optimizer.no_bias_decay", path: "optimizer.no_bias_decay", label: "No bias decay" },
    ],
  },
  {
    title: "Learning-rate schedule",
    fields: [
      { key: "_warmup", errPath: "schedule.warmup", type: "select", label: "Warm-up", def: "none", options: ["none", "epochs", "steps"] },
      { key: "schedule.warmup.epochs", path: "schedule.warmup.epochs", label: "Warm-up epochs", def: 1, step: 0.5, when: warmup("epochs") },
      { key: "schedule.warmup.steps", path: "schedule.warmup.steps", label: "Warm-up steps", def: 100, when: warmup("steps") },
      { key: "schedule.warmup.start_lr", path: "schedule.warmup.start_lr", label: "Start lr", when: warmup("epochs", "steps") },
      { key: "schedule.decay.kind", path: "schedule.decay.kind", label: "Decay", def: "cosine" },
      { key: "step.step_epochs", path: "schedule.decay.step_epochs", label: "Step every (epochs)" },
      { key: "multistep.milestones", path: "schedule.decay.milestones", label: "Milestones (epochs)", def: [10, 15] },
      { key: "decay.gamma", path: "schedule.decay.gamma", label: "Gamma" },
      { key: "onecycle.pct_start", path: "schedule.decay.pct_start", label: "pct_start", step: 0.05 },
      { key: "onecycle.div_factor", path: "schedule.decay.div_factor", label: "div_factor" },
      { key: "onecycle.final_div_factor", path: "schedule.decay.final_div_factor", label: "final_div_factor" },
      { key: "restarts.t0_epochs", path: "schedule.decay.t0_epochs", label: "First cycle (epochs)" },
      { key: "restarts.t_mult", path: "schedule.decay.t_mult", label: "t_mult" },
      { key: "poly.power", path: "schedule.decay.power", label: "Power" },
      { key: "isqrt.timescale_steps", path: "schedule.decay.timescale_steps", label: "Timescale (steps)" },
      { key: "wsd.decay_fraction", path: "schedule.decay.decay_fraction", label: "Decay fraction", step: 0.05 },
      { key: "decay.min_lr", path: "schedule.decay.min_lr", label: "Min lr" },
      // a decay kind's parameters without a line above are added here (formfields.js)
      { key: "schedule.per", path: "schedule.per", label: "Update per" },
    ],
  },
  {
    title: "Training",
    fields: [
      { key: "training.epochs", path: "training.epochs", label: "Epochs" },
      { key: "training.batch_size", path: "training.batch_size", label: "Batch size" },
      { key: "training.seed", path: "training.seed", label: "Seed" },
      { key: "training.device", path: "training.device", label: "Device" },
      { key: "training.precision", path: "training.precision", label: "Precision" },
      { key: "training.log_every", path: "training.log_every", label: "Log every (steps)" },
      { key: "training.grad_clip", path: "training.grad_clip", label: "Grad clip" },
      { key: "training.time_limit_s", path: "training.time_limit_s", label: "Time limit (s)" },
      { key: "training.checkpoint_every_s", path: "training.checkpoint_every_s", label: "Checkpoint every (s)" },
      { key: "training.checkpoint_every", path: "training.checkpoint_every", label: "Checkpoint every (epochs)" },
      { key: "training.compile", path: "training.compile", label: "torch.compile" },
      { key: "_early", errPath: "training.early_stopping", type: "bool", label: "Early stopping", def: false },
      { key: "es.metric", path: "training.early_stopping.metric", label: "Watch", when: on("_early") },
      { key: "es.patience", path: "training.early_stopping.patience", label: "Patience (epochs)", when: on("_early") },
      { key: "es.min_delta", path: "training.early_stopping.min_delta", label: "Min delta", when: on("_early") },
    ],
  },
  {
    title: "Regularization",
    fields: [
      { key: "reg.l1", path: "regularization.l1", label: "L1" },
      { key: "reg.l2", path: "regularization.l2", label: "L2" },
      { key: "reg.dropout", path: "regularization.dropout", label: "Dropout", step: 0.05 },
      { key: "reg.label_smoothing", path: "regularization.label_smoothing", label: "Label smoothing", step: 0.05 },
      { key: "_mixup", errPath: "regularization.mixup", type: "bool", label: "Mixup", def: false },
      { key: "mixup.alpha", path: "regularization.mixup.alpha", label: "Mixup α", when: on("_mixup") },
      { key: "mixup.prob", path: "regularization.mixup.prob", label: "Mixup prob", step: 0.1, when: on("_mixup") },
      { key: "_cutmix", errPath: "regularization.cutmix", type: "bool", label: "CutMix", def: false },
      { key: "cutmix.alpha", path: "regularization.cutmix.alpha", label: "CutMix α", when: on("_cutmix") },
      { key: "cutmix.prob", path: "regularization.cutmix.prob", label: "CutMix prob", step: 0.1, when: on("_cutmix") },
      { key: "_augment", errPath: "regularization.augment", type: "bool", label: "Augment", def: false },
      { key: "aug.hflip", path: "regularization.augment.hflip", label: "H-flip", when: on("_augment") },
      { key: "aug.vflip", path: "regularization.augment.vflip", label: "V-flip", when: on("_augment") },
      { key: "aug.rotate", path: "regularization.augment.rotate", label: "Rotate (±deg)", when: on("_augment") },
      { key: "aug.crop_padding", path: "regularization.augment.crop_padding", label: "Crop padding (px)", when: on("_augment") },
      { key: "aug.translate", path: "regularization.augment.translate", label: "Translate", step: 0.05, when: on("_augment") },
      { key: "aug.noise_std", path: "regularization.augment.noise_std", label: "Noise std", when: on("_augment") },
    ],
  },
];

/** Optional sections: when the switch (key) is off the spec carries null at path. */
export const SWITCHES = [
  { key: "_warmup", path: "schedule.warmup", on: (v) => v !== "none", fromSpec: (w) => (w ? (w.steps != null ? "steps" : "epochs") : "none") },
  { key: "_early", path: "training.early_stopping", on: (v) => v, fromSpec: (x) => !!x },
  { key: "_mixup", path: "regularization.mixup", on: (v) => v, fromSpec: (x) => !!x },
  { key: "_cutmix", path: "regularization.cutmix", on: (v) => v, fromSpec: (x) => !!x },
  { key: "_augment", path: "regularization.augment", on: (v) => v, fromSpec: (x) => !!x },
];

/** The LR range test panel: not part of the training spec (lr_range is a 422 there). */
export const RANGE_FIELDS = [
  { key: "lr_range.min_lr", path: "lr_range.min_lr", label: "Min lr" },
  { key: "lr_range.max_lr", path: "lr_range.max_lr", label: "Max lr" },
  { key: "lr_range.steps", path: "lr_range.steps", label: "Steps" },
];
