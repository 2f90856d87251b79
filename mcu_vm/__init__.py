"""The MCU: an aiortc selective forwarding media server (runs on Compute Engine VMs)."""
