"""segtube_jax.data."""
