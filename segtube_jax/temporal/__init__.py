"""segtube_jax.temporal."""
