"""The sandbox's data plane: one module per database engine, behind one small interface."""
