"""The `dense-descriptors` command line (main.py) and one module per command, on the outer ring of the package.

Options for config dataclass fields are generated from their metadata (config_options.py); track, slam and
describe also read the nodes' parameter files (parameter_files.py, ``--params``). No library package imports
this one.
"""
