"""Our scenes written in real formats (OpenScene log pickles and nuPlan GPKG maps), so that other tools
(NAVSIM's own loaders) read them."""
