"""The config stage: strict YAML (``yamlio``), typed fields (``fields``), the registries of everything a
config can name (``registry``), ``--set`` overrides, fillers and the spec itself.  It imports no run-time
module."""
