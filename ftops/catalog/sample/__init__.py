"""The generated "acme" enterprise used by the demo, the tests and the benchmarks.

Pure data generation (no Django): deterministic by seed.

    build_sample_enterprise(seed=7) -> SampleEnterprise   (.services, .tool_documents)
    generate_interactions(seed=7, n=2000, days=120, now=None) -> list[ingest payload]
"""

from ftops.catalog.sample.documents import SampleEnterprise, build_sample_enterprise
from ftops.catalog.sample.interactions import DEFAULT_NOW, FAILURE_KINDS, generate_interactions

__all__ = ["DEFAULT_NOW", "FAILURE_KINDS", "SampleEnterprise", "build_sample_enterprise", "generate_interactions"]
