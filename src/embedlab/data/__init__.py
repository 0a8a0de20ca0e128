"""CTR data: the loader registry (``synth``, ``movielens``, ``criteo``), planted-truth
synthetic data with known Bayes limits, MovieLens-100k, Criteo TSV files, the schema."""

from embedlab._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "CTRData": "embedlab.data.registry",
        "load_data": "embedlab.data.registry",
        "register_data": "embedlab.data.registry",
        "SynthConfig": "embedlab.data.synth",
        "generate_synth": "embedlab.data.synth:generate",
        "default_cardinalities": "embedlab.data.synth",
        "fetch_movielens": "embedlab.data.movielens",
        "load_movielens": "embedlab.data.movielens",
        "CTRSchema": "embedlab.data.schema",
        "CTRArrays": "embedlab.data.schema",
        "Batch": "embedlab.data.schema",
        "iter_batches": "embedlab.data.schema",
    },
)
