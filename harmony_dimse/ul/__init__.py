"""DICOM Upper Layer (PS3.8), sans-IO: PDUs, the Sta1-Sta13 state machine, association state."""
