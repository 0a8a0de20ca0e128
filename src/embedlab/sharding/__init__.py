"""Embedding-table sharding: tasks and plans (``specs/sharding-formats.md``), planners."""

from embedlab.sharding.types import (
    Plan,
    Shard,
    Table,
    Task,
    load_plans,
    load_tasks,
    save_plans,
    save_tasks,
)

__all__ = ["Plan", "Shard", "Table", "Task", "load_plans", "load_tasks", "save_plans", "save_tasks"]
