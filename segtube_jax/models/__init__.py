"""segtube_jax.models."""
