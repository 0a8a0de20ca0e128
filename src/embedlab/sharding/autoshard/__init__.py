"""AutoShard (Zha et al., KDD 2022, arXiv 2208.06399): a learned table-wise sharding planner.

* :mod:`.model` -- the network (shared table MLP, cost head, LSTM policy over the table
  sequence with per-device action features, value head) and the balance reward;
* :mod:`.agent` -- the saved model, batched rollouts on the estimated costs, the
  actor-critic loss, and the planning-time search (descent on the cost head's compute plus
  a communication model's all-to-alls);
* :mod:`.train` -- the training loop on :class:`~embedlab.sharding.cost.CostMeter`
  measurements (replay buffer, checkpoint/resume): :func:`~.train.train_autoshard`,
  :func:`~.train.load_model`;
* :mod:`.planner` -- :class:`~.planner.AutoShardPlanner` (argmax of the policy, then the
  search of :data:`~.planner.DEFAULT_SEARCH`).

The shipped ``default_model/`` was trained by ``train_autoshard`` on 30 tasks of 10, 20 and
40 tables on 2, 4 and 8 devices (``autoshard`` family, train split; the step-cost meter at
batch 4096, measured rewards for 420 s of measurement, then cost-head rewards;
``benchmarks/sharding_retrain.sh``); its ``model.json`` records the command, seed and
backend. Its cost head models compute only and errs most on the memory-limited mixed-dim
family, which it never saw; the default search adds the all-to-alls that the head lacks
(docs/sharding.md gives the current figures).

Nothing heavy is imported here; import the submodules.
"""
