"""Workshop bundles: images, profiles and wheels in one file, carried to machines with no network.

`archive` is the file format and needs only the standard library (a machine with no virtual
environment yet takes the wheels out with `python3 -m emulator.bundle wheels FILE DIR`);
`engine` saves and loads the images through Docker.
"""
