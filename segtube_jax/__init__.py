"""segtube-jax: a JAX/Flax reimplementation of the Segment-tube detector (Duan et al., ICIP 2018)."""

__version__ = "0.1.0"
