"""embedlab: working, measured tools for embedding-heavy models.

Every capability's main objects are reachable from the top level, imported on first use
(``import embedlab`` itself imports neither torch nor TorchRec)::

    import embedlab as el

    data = el.load_data("movielens")
    metrics = el.train(el.TrainConfig(data="movielens", epochs=1), "runs/ml")
    plans = el.plan_all(el.gen_tasks("dreamshard", 10, 2, 3), "neuroshard")

The submodules hold everything else (``el.sharding.cost``, ``el.blender.sampler`` ...).
``el.train`` is the :mod:`embedlab.train` package, callable as
:func:`embedlab.train.trainer.train` (see that package's docstring for why).
"""

from embedlab._lazy import lazy_exports
from embedlab.errors import UserError

__version__ = "0.1.0"

#: public name -> defining module ("module:attribute" where the names differ)
_EXPORTS: dict[str, str] = {
    # training: model, configuration, the train entry point, metrics
    "DLRM": "embedlab.models.dlrm",
    "DLRMConfig": "embedlab.models.dlrm",
    "model_config": "embedlab.models.dlrm",
    "TrainConfig": "embedlab.train.trainer",
    "resume_run": "embedlab.train.trainer",
    "ctr_metrics": "embedlab.train.metrics",
    # data loaders
    "CTRData": "embedlab.data.registry",
    "load_data": "embedlab.data.registry",
    "register_data": "embedlab.data.registry",
    "SynthConfig": "embedlab.data.synth",
    "generate_synth": "embedlab.data.synth:generate",
    "fetch_movielens": "embedlab.data.movielens",
    # embedding optimizers
    "CFSGD": "embedlab.optim.frequency",
    "FASGD": "embedlab.optim.frequency",
    "RowWiseAdagrad": "embedlab.optim.rowwise_adagrad",
    "get_optimizer": "embedlab.optim.registry",
    # sharding: tasks and plans, planners, the cost meter, TorchRec integration
    "Table": "embedlab.sharding.types",
    "Task": "embedlab.sharding.types",
    "Plan": "embedlab.sharding.types",
    "load_tasks": "embedlab.sharding.types",
    "save_tasks": "embedlab.sharding.types",
    "load_plans": "embedlab.sharding.types",
    "save_plans": "embedlab.sharding.types",
    "gen_tasks": "embedlab.sharding.generator",
    "PLANNERS": "embedlab.sharding.planners",
    "HEURISTICS": "embedlab.sharding.planners",
    "get_planner": "embedlab.sharding.planners",
    "plan_all": "embedlab.sharding.planners",
    "register_planner": "embedlab.sharding.planners",
    "DreamShardPlanner": "embedlab.sharding.dreamshard.planner",
    "AutoShardPlanner": "embedlab.sharding.autoshard.planner",
    "NeuroShardPlanner": "embedlab.sharding.neuroshard.planner",
    "TorchRecPlanner": "embedlab.sharding.torchrec_adapter",
    "EmbedlabPlanner": "embedlab.sharding.torchrec_adapter",
    "to_torchrec_plan": "embedlab.sharding.torchrec_adapter",
    "CostMeter": "embedlab.sharding.cost",
    "MeterSettings": "embedlab.sharding.cost",
    "run_plan": "embedlab.sharding.run",
    # positive-unlabeled learning
    "PUClassifier": "embedlab.pu.classifier",
    # scaling laws
    "fit_power_law": "embedlab.scaling.laws",
    "fit_joint": "embedlab.scaling.laws",
    "PowerLawFit": "embedlab.scaling.laws",
    "JointFit": "embedlab.scaling.laws",
    "fit_runs": "embedlab.scaling.analysis",
    "SweepSpec": "embedlab.scaling.sweep",
    "run_sweep": "embedlab.scaling.sweep",
    "dlrm_flops": "embedlab.scaling.flops",
    # growth and pruning
    "GrowthSchedule": "embedlab.growth.schedule",
    "GrowthManager": "embedlab.growth.scheme",
    # online training under temporal shift
    "OnlineConfig": "embedlab.online.protocol",
    "run_online": "embedlab.online.protocol",
    "make_strategy": "embedlab.online.strategies",
    "strategy_names": "embedlab.online.strategies",
    "synth_stream": "embedlab.online.periods",
    "movielens_stream": "embedlab.online.periods",
    "FGDConfig": "embedlab.online.fgd",
    # BLENDER: residual operators, the sampler, the generator
    "union_sum": "embedlab.blender.operators",
    "union_max": "embedlab.blender.operators",
    "intersection_pca": "embedlab.blender.operators",
    "intersection_consensus": "embedlab.blender.operators",
    "mean_residual": "embedlab.blender.operators",
    "composable_sum": "embedlab.blender.operators",
    "get_operator": "embedlab.blender.operators",
    "SamplerConfig": "embedlab.blender.sampler",
    "blender_sample": "embedlab.blender.sampler",
    "load_generator": "embedlab.blender.generator",
    "DEFAULT_GENERATOR": "embedlab.blender.default_model",
    # the main job
    "reproduce": "embedlab.experiments.runner",
}
_SUBPACKAGES = ("blender", "data", "experiments", "growth", "models", "online", "optim", "pu",
                "report", "scaling", "sharding", "train")  # fmt: skip

__getattr__, __dir__, _lazy_all = lazy_exports(__name__, _EXPORTS, _SUBPACKAGES)
# ``train`` is the subpackage, callable as the train function (see embedlab.train)
__all__ = ["UserError", "__version__", "train", *_lazy_all]
