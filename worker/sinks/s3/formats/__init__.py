"""Object formats of the S3 sink, behind one part interface.

``base``: the interface (``Part``, ``PartFormat``), the NDJSON and CSV formats and the choice by
SLUICE_S3_FORMAT; ``gzip_lines``: open parts of gzip lines (NDJSON, CSV) spooled to a file;
``parquet``: Parquet parts written a row group at a time; ``compression``: whole buffers
compressed with igzip.

Imports: ``worker.config``, ``worker.events`` and the S3 sink's ``naming``.
"""
