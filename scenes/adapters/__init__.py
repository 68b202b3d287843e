"""Real logs and maps read into the scene model: OpenScene / NAVSIM log pickles (`openscene`) and nuPlan GPKG
maps (`nuplan_maps`). Nothing here imports navsim or nuplan-devkit; user pickles are only ever read through
`scenes.adapters.pickles.restricted_load`."""
