"""segtube_jax.spatial."""
