"""``--ray-address`` joining a Ray cluster of several nodes: two Ray nodes of one CPU each, started on this
machine by Ray's own test helper (``ray.cluster_utils.Cluster``: a head and a second raylet, as a second machine's
``ray start --address=HEAD:PORT`` would add), and an A3C run with 2 workers that must spread over both. The
cross-machine part (the network between two hosts) is not exercised here. Skipped without Ray."""

from __future__ import annotations

import json

import pytest

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.xdist_group("ray")  # one Ray per test process at a time: with tests/test_ray.py


@pytest.mark.slow
def test_workers_spread_over_the_nodes_of_a_cluster(tmp_path):
    from ray.cluster_utils import Cluster

    from advantage.cli import main

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        run_dir = tmp_path / "run"
        code = main(["train", "a3c", "--env", "CartPole-v1", "--seeds", "0", "--workers", "2",
                     "--total-steps", "2000", "--ray-address", cluster.address, "--run-dir", str(run_dir),
                     "--no-video", "--no-progress", "--eval-episodes", "2"])  # fmt: skip
        assert code in (0, None)
        assert len(ray.nodes()) == 2
        summary = json.loads((run_dir / "summary.json").read_text())
        # each worker asks for one CPU and each node has one: the two workers run on different nodes
        assert summary["worker_pool"] == "ray" and summary["workers"] == 2 and summary["worker_nodes"] == 2
        assert summary["env_steps"] == 2000 and summary["worker_restarts"] == 0
    finally:
        ray.shutdown()
        cluster.shutdown()
