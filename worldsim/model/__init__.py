"""The world model: its config, the frame tokenizer, the space-time dynamics transformer and its shortcut
objective, the motion prior, the outcome heads, the action codec, and checkpoints (`worldsim.model.world_model`
composes them)."""
