"""Results as DICOM objects that PACS and other viewers open (highdicom; Qt-free).

- `sources` the source images of a volume (headers re-read) and its display order mapped onto them.
- `seg`     a segmentation run's map as a DICOM SEG (BINARY or FRACTIONAL), `write_seg`.
- `sr`      per-slice scores or areas, the volume's value and a reader's labels as a TID 1500
            measurement report in a Comprehensive 3D SR, `write_sr`.
"""
