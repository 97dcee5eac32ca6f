"""The cluster a process belongs to, as the `TF_CONFIG` environment variable
describes it: one parser for training (`train.engine.distribute`) and extraction
(`data.extract`).

Example:

>>> import os
>>> os.environ["TF_CONFIG"] = EXAMPLE_TF_CONFIG
>>> cluster, task_type, index = read_tf_config()
>>> task_type, index
('worker', 0)
>>> worker_shard(cluster, task_type, index)
(0, 2)
>>> del os.environ["TF_CONFIG"]
"""

import json
import os

EXAMPLE_TF_CONFIG = (
    '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
    '"task": {"type": "worker", "index": 0}}'
)

# Task types that do a share of the work, in the order their shards are
# numbered: a chief (if the cluster has one) is shard 0, the workers follow.
SHARD_TASK_TYPES = ("chief", "worker")


def read_tf_config(needed_by="--strategy multi-worker"):
    """Reads and checks the `TF_CONFIG` of a multi-worker run.

    Args:
        needed_by: what needs the variable, named when it is missing.

    Returns:
        `(cluster, task_type, task_index)`.

    Raises:
        ValueError: TF_CONFIG is missing, not JSON, or its task is not one
            of its cluster's.
    """
    text = os.environ.get("TF_CONFIG")
    where = "the TF_CONFIG environment variable"
    if not text:
        raise ValueError(
            f"{needed_by} needs {where} naming the cluster and this "
            f"machine's task, e.g. TF_CONFIG='{EXAMPLE_TF_CONFIG}'"
        )
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{where} is not valid JSON ({error}); expected e.g. {EXAMPLE_TF_CONFIG}"
        ) from None
    cluster = value.get("cluster") if isinstance(value, dict) else None
    task = value.get("task") if isinstance(value, dict) else None
    if not (
        isinstance(cluster, dict)
        and cluster
        and all(isinstance(hosts, list) and hosts for hosts in cluster.values())
    ):
        raise ValueError(
            f"{where}: 'cluster' must map job names to host:port lists, e.g. {EXAMPLE_TF_CONFIG}"
        )
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise ValueError(
            f"{where}: 'task.type' must be one of the cluster's jobs "
            f"({', '.join(cluster)}), got {task.get('type') if isinstance(task, dict) else task!r}"
        )
    index = task.get("index")
    hosts = cluster[task["type"]]
    if not isinstance(index, int) or not 0 <= index < len(hosts):
        raise ValueError(
            f"{where}: 'task.index' must be an integer in [0, {len(hosts)}) for job "
            f"{task['type']!r}, got {index!r}"
        )
    return cluster, task["type"], index


def worker_shard(cluster, task_type, index):
    """This task's share of a job split over the cluster's chief and workers.

    Every "chief" and "worker" task takes one share: the chief (there is at
    most one in practice) first, then the workers in their listed order, so
    a cluster of a chief and two workers splits the work in 3 and worker 1
    takes share 2. Other tasks ("ps", "evaluator") take none.

    Returns:
        `(shard_index, num_shards)`.

    Raises:
        ValueError: the task is not a chief or a worker.

    Example:

    >>> cluster = {"chief": ["a:1"], "worker": ["b:1", "c:1"]}
    >>> worker_shard(cluster, "worker", 1)
    (2, 3)
    """
    if task_type not in SHARD_TASK_TYPES:
        raise ValueError(
            f"TF_CONFIG: task type {task_type!r} takes no share of the work; only "
            f"{' and '.join(SHARD_TASK_TYPES)} tasks do"
        )
    offset = 0
    for name in SHARD_TASK_TYPES:
        if name == task_type:
            break
        offset += len(cluster.get(name, ()))
    num_shards = sum(len(cluster.get(name, ())) for name in SHARD_TASK_TYPES)
    return offset + index, num_shards
