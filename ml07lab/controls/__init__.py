"""Controls (defences) against ML07: each module measures one control and writes its scenario-JSON section."""
