"""Trainers: stage 1–2 SFT (``sft``); later GRPO. Launched through ``jobs/`` by the CLI."""
