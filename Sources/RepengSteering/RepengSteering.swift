// RepengSteering: control vectors (repeng 0.4's ControlVector, DatasetEntry, ControlModel) on the engine.
//
// - Datasets: `DatasetEntry`, `makeDataset` (repeng's README recipe), `makeChatDataset`,
//   `defaultSuffixes`, `loadDataset` / `loadSuffixes` (Dataset.swift, DefaultSuffixes.swift).
// - Training: `ControlVector.train` (pca_diff, pca_center, mean_diff) over hidden states read by
//   `lastTokenHiddenStates` with shared prefixes (Training.swift, HiddenStateExtraction.swift,
//   PCA.swift).
// - Vectors: `ControlVector` with repeng's arithmetic (ControlVector.swift), GGUF and JSON files
//   (VectorFiles.swift, docs/vector-formats.md).
// - Control: `ControlVector.steering(for:coefficient:layers:normalize:)` and `ControlledModel`
//   (ControlledModel.swift).
//
// Layer numbering throughout: block index, 0-based; layer i is the output of block i. Negative
// ids given by callers count from the end (-1 = last block).
