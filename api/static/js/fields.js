// The designer's form, field by field, mirroring tricks/spec/ (names, bounds,
// defaults, descriptions). `path` is the spec path a field writes; fields
// without one (keys starting with "_") switch optional sections on and off and
// carry `errPath`, the spec path a 422 for that section names. `when(v)` says
// whether the field applies, given v(key) → the current value of another field.

const isArch = (a) => (v) => v("model.arch") === a;
const isOpt = (...names) => (v) => names.includes(v("optimizer.name"));
const isKind = (...kinds) => (v) => kinds.includes(v("schedule.decay.kind"));

export const DECAY_KINDS = [
  "constant", "step", "multistep", "cosine", "linear", "exponential",
  "onecycle", "cosine_restarts", "polynomial", "inverse_sqrt", "wsd",
];

export const OPT_DEFAULTS = {
  sgd: { lr: 0.05, weight_decay: 5e-4 },
  adam: { lr: 1e-3, weight_decay: 0 },
  adamw: { lr: 1e-3, weight_decay: 0.01 },
};

export const SECTIONS = [
  {
    title: "Job",
    fields: [
      { key: "name", path: "name", type: "text", label: "Name", def: "", max: 200, help: "A label for the list; describe the trick being tried." },
    ],
  },
  {
    title: "Data",
    fields: [
      { key: "data.dataset", path: "data.dataset", type: "select", label: "Dataset", options: [], help: "Built-in or uploaded (GET /datasets)." },
      { key: "data.val_fraction", path: "data.val_fraction", type: "number", label: "Val fraction", def: 0.2, min: 0, max: 0.9, step: 0.05, help: "Share held out for validation when the dataset has no x_val/y_val." },
      { key: "data.standardize", path: "data.standardize", type: "bool", label: "Standardize", def: true, help: "Mean/std fitted on the training split only." },
    ],
  },
  {
    title: "Model",
    fields: [
      { key: "model.arch", path: "model.arch", type: "select", label: "Architecture", def: "mlp", options: ["mlp", "cnn", "resnet"] },
      { key: "mlp.hidden", path: "model.hidden", type: "intlist", label: "Hidden widths", def: [256, 128], when: isArch("mlp"), help: "Comma-separated widths, e.g. 256, 128. Inputs are flattened." },
      { key: "cnn.channels", path: "model.channels", type: "intlist", label: "Channels", def: [32, 64], when: isArch("cnn"), help: "Output channels of each conv block." },
      { key: "cnn.kernel_size", path: "model.kernel_size", type: "int", label: "Kernel size", def: 3, min: 1, max: 15, when: isArch("cnn"), help: "Odd sizes keep the spatial size." },
      { key: "cnn.hidden", path: "model.hidden", type: "int", label: "Dense width", def: 128, min: 1, max: 8192, when: isArch("cnn"), help: "Width of the dense layer before the classifier." },
      { key: "resnet.width", path: "model.width", type: "int", label: "Width", def: 32, min: 4, max: 512, when: isArch("resnet"), help: "Channels of the first stage; each stage doubles it." },
      { key: "resnet.blocks", path: "model.blocks", type: "intlist", label: "Blocks", def: [1, 1], when: isArch("resnet"), help: "Residual blocks per stage; later stages downsample by 2." },
      { key: "resnet.zero_init_residual", path: "model.zero_init_residual", type: "bool", label: "Zero-init residual", def: true, when: isArch("resnet"), help: "Last BN gamma of each block at 0: every block starts as the identity." },
      { key: "model.batch_norm", path: "model.batch_norm", type: "bool", label: "Batch norm", def: true, when: isArch("mlp"), help: "BatchNorm after each hidden linear layer (on by default)." },
      { key: "cnn.batch_norm", path: "model.batch_norm", type: "bool", label: "Batch norm", def: true, when: isArch("cnn"), help: "BatchNorm after each convolution." },
    ],
  },
  {
    title: "Optimizer",
    fields: [
      { key: "optimizer.name", path: "optimizer.name", type: "select", label: "Optimizer", def: "sgd", options: ["sgd", "adam", "adamw"] },
      { key: "optimizer.lr", path: "optimizer.lr", type: "number", label: "Peak lr (lr0)", def: 0.05, min: 0, max: 100, help: "0.1 × batch/256 is the linear-scaling rule for SGD; 1e-3 for Adam." },
      { key: "optimizer.momentum", path: "optimizer.momentum", type: "number", label: "Momentum", def: 0.9, min: 0, max: 0.999, step: 0.01, when: isOpt("sgd") },
      { key: "optimizer.nesterov", path: "optimizer.nesterov", type: "bool", label: "Nesterov", def: true, when: isOpt("sgd"), help: "Needs momentum > 0." },
      { key: "optimizer.betas", path: "optimizer.betas", type: "floatlist", label: "Betas", def: [0.9, 0.999], when: isOpt("adam", "adamw"), help: "β1, β2." },
      { key: "optimizer.eps", path: "optimizer.eps", type: "number", label: "Eps", def: 1e-8, min: 0, max: 1, when: isOpt("adam", "adamw") },
      { key: "optimizer.weight_decay", path: "optimizer.weight_decay", type: "number", label: "Weight decay", def: 5e-4, min: 0, max: 1, help: "Coupled (L2 in the gradient) for sgd/adam, decoupled for adamw." },
      { key: "optimizer.no_bias_decay", path: "optimizer.no_bias_decay", type: "bool", label: "No bias decay", def: true, help: "Exempt biases and norm parameters from weight decay (Bag of Tricks)." },
    ],
  },
  {
    title: "Learning-rate schedule",
    fields: [
      { key: "_warmup", errPath: "schedule.warmup", type: "select", label: "Warm-up", def: "none", options: ["none", "epochs", "steps"], help: "Linear warm-up before the decay." },
      { key: "schedule.warmup.epochs", path: "schedule.warmup.epochs", type: "number", label: "Warm-up epochs", def: 1, min: 0, max: 1000, step: 0.5, when: (v) => v("_warmup") === "epochs" },
      { key: "schedule.warmup.steps", path: "schedule.warmup.steps", type: "int", label: "Warm-up steps", def: 100, min: 1, when: (v) => v("_warmup") === "steps" },
      { key: "schedule.warmup.start_lr", path: "schedule.warmup.start_lr", type: "number", label: "Start lr", def: 0, min: 0, max: 100, when: (v) => v("_warmup") !== "none", help: "First batch uses start_lr + (lr0 − start_lr)/m." },
      { key: "schedule.decay.kind", path: "schedule.decay.kind", type: "select", label: "Decay", def: "cosine", options: DECAY_KINDS },
      { key: "step.step_epochs", path: "schedule.decay.step_epochs", type: "int", label: "Step every (epochs)", def: 30, min: 1, max: 1000, when: isKind("step"), help: "Multiply the lr by gamma every this many epochs (StepLR)." },
      { key: "multistep.milestones", path: "schedule.decay.milestones", type: "intlist", label: "Milestones (epochs)", def: [10, 15], when: isKind("multistep"), help: "Strictly increasing epochs, below training.epochs." },
      { key: "decay.gamma", path: "schedule.decay.gamma", type: "number", label: "Gamma", def: 0.1, min: 0, max: 1, when: isKind("step", "multistep") },
      { key: "exp.gamma", path: "schedule.decay.gamma", type: "number", label: "Gamma per epoch", def: 0.95, min: 0, max: 1, when: isKind("exponential"), help: "Applied smoothly per batch in batch mode." },
      { key: "onecycle.pct_start", path: "schedule.decay.pct_start", type: "number", label: "pct_start", def: 0.3, min: 0, max: 1, step: 0.05, when: isKind("onecycle"), help: "Share of training rising to lr0 (brings its own warm-up)." },
      { key: "onecycle.div_factor", path: "schedule.decay.div_factor", type: "number", label: "div_factor", def: 25, min: 1, max: 1e6, when: isKind("onecycle"), help: "Initial lr = lr0 / div_factor." },
      { key: "onecycle.final_div_factor", path: "schedule.decay.final_div_factor", type: "number", label: "final_div_factor", def: 1e4, min: 1, max: 1e9, when: isKind("onecycle"), help: "Final lr = initial lr / final_div_factor." },
      { key: "restarts.t0_epochs", path: "schedule.decay.t0_epochs", type: "number", label: "First cycle (epochs)", def: 10, min: 0, max: 1000, when: isKind("cosine_restarts"), help: "SGDR T_0." },
      { key: "restarts.t_mult", path: "schedule.decay.t_mult", type: "int", label: "t_mult", def: 1, min: 1, max: 10, when: isKind("cosine_restarts"), help: "Each cycle is t_mult times longer." },
      { key: "poly.power", path: "schedule.decay.power", type: "number", label: "Power", def: 1, min: 0, max: 10, when: isKind("polynomial") },
      { key: "isqrt.timescale_steps", path: "schedule.decay.timescale_steps", type: "int", label: "Timescale (steps)", def: 0, min: 0, when: isKind("inverse_sqrt"), help: "lr0·sqrt(s/(u+s)); 0: s = the warm-up length." },
      { key: "wsd.decay_fraction", path: "schedule.decay.decay_fraction", type: "number", label: "Decay fraction", def: 0.2, min: 0, max: 1, step: 0.05, when: isKind("wsd"), help: "Share of post-warm-up steps in the final linear cool-down." },
      { key: "decay.min_lr", path: "schedule.decay.min_lr", type: "number", label: "Min lr", def: 0, min: 0, max: 100, when: isKind("cosine", "linear", "cosine_restarts", "polynomial", "wsd"), help: "lr at the end of the decay." },
      { key: "schedule.per", path: "schedule.per", type: "select", label: "Update per", def: "batch", options: ["batch", "epoch"], help: "batch: lr changes every step; epoch: once per epoch." },
    ],
  },
  {
    title: "Training",
    fields: [
      { key: "training.epochs", path: "training.epochs", type: "int", label: "Epochs", def: 20, min: 1, max: 1000 },
      { key: "training.batch_size", path: "training.batch_size", type: "int", label: "Batch size", def: 64, min: 1, max: 65536 },
      { key: "training.seed", path: "training.seed", type: "int", label: "Seed", def: 0, min: 0 },
      { key: "training.device", path: "training.device", type: "select", label: "Device", def: "auto", options: ["auto", "cpu", "cuda"] },
      { key: "training.precision", path: "training.precision", type: "select", label: "Precision", def: "auto", options: ["auto", "fp32", "bf16", "fp16"] },
      { key: "training.log_every", path: "training.log_every", type: "int", label: "Log every (steps)", def: 10, min: 1, help: "One host sync per log point." },
      { key: "training.grad_clip", path: "training.grad_clip", type: "number", label: "Grad clip", def: null, min: 0, optional: true, help: "Global grad-norm clip; empty for off." },
      { key: "training.time_limit_s", path: "training.time_limit_s", type: "number", label: "Time limit (s)", def: null, min: 0, optional: true, help: "Empty for none." },
      { key: "training.checkpoint_every", path: "training.checkpoint_every", type: "int", label: "Checkpoint every (epochs)", def: 1, min: 1 },
      { key: "_early", errPath: "training.early_stopping", type: "bool", label: "Early stopping", def: false },
      { key: "es.metric", path: "training.early_stopping.metric", type: "select", label: "Watch", def: "val_loss", options: ["val_loss", "val_acc", "val_ece"], when: (v) => v("_early") },
      { key: "es.patience", path: "training.early_stopping.patience", type: "int", label: "Patience (epochs)", def: 5, min: 1, when: (v) => v("_early") },
      { key: "es.min_delta", path: "training.early_stopping.min_delta", type: "number", label: "Min delta", def: 0, min: 0, when: (v) => v("_early") },
    ],
  },
  {
    title: "Regularization",
    fields: [
      { key: "reg.l1", path: "regularization.l1", type: "number", label: "L1", def: 0, min: 0, max: 1, help: "loss += l1·Σ|w| (weights with ndim ≥ 2); 1e-5 to 1e-4." },
      { key: "reg.l2", path: "regularization.l2", type: "number", label: "L2", def: 0, min: 0, max: 1, help: "loss += l2·Σw², apart from weight_decay." },
      { key: "reg.dropout", path: "regularization.dropout", type: "number", label: "Dropout", def: 0, min: 0, max: 0.99, step: 0.05, help: "Drop probability before each dense layer; 0.1–0.5." },
      { key: "reg.label_smoothing", path: "regularization.label_smoothing", type: "number", label: "Label smoothing", def: 0, min: 0, max: 0.99, step: 0.05, help: "(1−ε)·onehot + ε/K; 0.1 is usual." },
      { key: "_mixup", errPath: "regularization.mixup", type: "bool", label: "Mixup", def: false },
      { key: "mixup.alpha", path: "regularization.mixup.alpha", type: "number", label: "Mixup α", def: 0.2, min: 0, max: 100, when: (v) => v("_mixup"), help: "λ ~ Beta(α, α); 0.2 is usual." },
      { key: "mixup.prob", path: "regularization.mixup.prob", type: "number", label: "Mixup prob", def: 1, min: 0, max: 1, step: 0.1, when: (v) => v("_mixup") },
      { key: "_cutmix", errPath: "regularization.cutmix", type: "bool", label: "CutMix", def: false, help: "Images only." },
      { key: "cutmix.alpha", path: "regularization.cutmix.alpha", type: "number", label: "CutMix α", def: 1, min: 0, max: 100, when: (v) => v("_cutmix") },
      { key: "cutmix.prob", path: "regularization.cutmix.prob", type: "number", label: "CutMix prob", def: 1, min: 0, max: 1, step: 0.1, when: (v) => v("_cutmix") },
      { key: "_augment", errPath: "regularization.augment", type: "bool", label: "Augment", def: false },
      { key: "aug.hflip", path: "regularization.augment.hflip", type: "bool", label: "H-flip", def: false, when: (v) => v("_augment"), help: "Images only; off for digits (a flipped 2 is not a 2)." },
      { key: "aug.vflip", path: "regularization.augment.vflip", type: "bool", label: "V-flip", def: false, when: (v) => v("_augment"), help: "Images only." },
      { key: "aug.rotate", path: "regularization.augment.rotate", type: "number", label: "Rotate (±deg)", def: 0, min: 0, max: 180, when: (v) => v("_augment"), help: "Images only." },
      { key: "aug.crop_padding", path: "regularization.augment.crop_padding", type: "int", label: "Crop padding (px)", def: 0, min: 0, max: 64, when: (v) => v("_augment"), help: "Images only." },
      { key: "aug.translate", path: "regularization.augment.translate", type: "number", label: "Translate", def: 0, min: 0, max: 0.5, step: 0.05, when: (v) => v("_augment"), help: "Fraction of the length; images and 1-D sequences." },
      { key: "aug.noise_std", path: "regularization.augment.noise_std", type: "number", label: "Noise std", def: 0, min: 0, max: 10, when: (v) => v("_augment"), help: "Gaussian noise in standardized units; any data." },
    ],
  },
];

export const FIELDS = SECTIONS.flatMap((s) => s.fields);

/** Optional sections: when the switch (key) is off the spec carries null at path. */
export const SWITCHES = [
  { key: "_warmup", path: "schedule.warmup", on: (v) => v !== "none", fromSpec: (w) => (w ? (w.steps != null ? "steps" : "epochs") : "none") },
  { key: "_early", path: "training.early_stopping", on: (v) => v, fromSpec: (x) => !!x },
  { key: "_mixup", path: "regularization.mixup", on: (v) => v, fromSpec: (x) => !!x },
  { key: "_cutmix", path: "regularization.cutmix", on: (v) => v, fromSpec: (x) => !!x },
  { key: "_augment", path: "regularization.augment", on: (v) => v, fromSpec: (x) => !!x },
];
