"""The local platform: launcher, emulator wrappers, front door, SMTP/DNS stand-ins, PBX simulator."""
