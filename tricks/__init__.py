"""tricks: the shared training core of tricklab.

Spec models and schedules import no torch, so the API can use them; the training
parts (`tricks.train`, models, data, augmentation) do.
"""
