"""Components of the base-images program: config, catalog, graph and resources."""
