"""Job-shop problem data, the bottom layer shared by solvers, dispatchers, environments and
visualisers (as job_shop_lib keeps its instance and schedule types apart from solvers and envs):
instances and their readers, schedules with an independent feasibility check and semi-active
timing, random instance generation and Gantt charts."""
from twins.jobshop.generate import random_instance
from twins.jobshop.instances import (
    FORMATS,
    Bounds,
    FlexibleJobShopInstance,
    FlowShopInstance,
    JobShopInstance,
    load_instance,
    resolve_instance_path,
    shipped_instances,
)
from twins.jobshop.schedule import Schedule, ScheduledOperation, check_schedule, permutation_schedule, semi_active

__all__ = [
    "FORMATS", "Bounds", "FlexibleJobShopInstance", "FlowShopInstance", "JobShopInstance", "Schedule",
    "ScheduledOperation", "check_schedule", "load_instance", "permutation_schedule", "random_instance",
    "resolve_instance_path", "semi_active", "shipped_instances",
]
