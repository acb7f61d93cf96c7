"""The pydicom edge: JSON query -> identifier (query), identifier bytes -> DICOM JSON (dicomjson),
Part 10 files on disk (files), and data set encoding per transfer syntax (encoding)."""
