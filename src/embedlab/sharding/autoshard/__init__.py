"""AutoShard (Zha et al., KDD 2022, arXiv 2208.06399): a learned table-wise sharding planner.

* :mod:`.model` -- the network (shared table MLP, cost head, LSTM policy over the table
  sequence with per-device action features, value head) and the balance reward;
* :mod:`.agent` -- the saved model, batched rollouts on the estimated costs, the
  actor-critic loss;
* :mod:`.train` -- the training loop on :class:`~embedlab.sharding.cost.CostMeter`
  measurements (replay buffer, checkpoint/resume): :func:`~.train.train_autoshard`,
  :func:`~.train.load_model`;
* :mod:`.planner` -- :class:`~.planner.AutoShardPlanner` (argmax of the policy).

The shipped ``default_model/`` was trained by ``train_autoshard`` on 30 tasks of 40 tables
on 8 devices (``autoshard`` family, train pool; FBGEMM CPU kernels at batch 512, 200 s of
measurement); its ``model.json`` records the command, seed and backend. Its cost head
extrapolates poorly to shards much larger than those it was trained on (4 devices × 10
tables): retrain on mixed device and table counts for such tasks.

Nothing heavy is imported here; import the submodules.
"""
