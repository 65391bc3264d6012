"""Stage 1 of DeformCast, input/output: users' InSAR products in, one contract displacement stack out.

Supported inputs (see ``docs/README_data.md`` for the user-facing description), one module each:

* :mod:`.egms` — **EGMS CSV** (European Ground Motion Service) L2a / L2b / L3 Ortho, also zipped,
  streamed in chunks.
* :mod:`.points` — **point layers** through OGR (shapefile, GeoPackage, ``path|layername=name``),
  the streamed :class:`~.points.PointSource` both point readers share, date-named columns, units.
* :mod:`.hdf5` — **MintPy** ``timeseries.h5`` (geocoded, metres) and **LiCSBAS** ``cum.h5`` (mm).
* **Raster stacks** (GeoTIFF, VRT, anything GDAL reads): :func:`algorithms.io.raster.open_stack`.

and the steps between them:

* :mod:`.formats` — :func:`~.formats.detect_format`: which reader a path needs.
* :mod:`.crs` — CRS parsing and point transformation, and :func:`~.crs.pixel_area` (the one rule
  for the area of a pixel, also in geographic CRSs).
* :mod:`.gridding` — points to a grid (mean of the points in a cell, snapped origin).
* :mod:`.sampling` — results back on the points (the cell each point was averaged into).
* :mod:`.covariates` — covariate rasters warped onto the stack grid.
* :mod:`.importer` — :func:`~.importer.import_timeseries`: any of the above to the contract stack
  GeoTIFF (mm, ISO dates, NaN nodata), optionally regularised and reprojected.

Import from the modules themselves (``from algorithms.io.importer import import_timeseries``);
this package re-exports nothing, so importing one reader does not load the others (h5py is only
needed for HDF5 inputs).
"""
