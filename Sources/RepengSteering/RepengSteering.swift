// RepengSteering: control vectors (repeng's ControlVector, DatasetEntry, ControlModel) on the engine.
