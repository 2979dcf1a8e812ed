"""bert_tf: BERT pretraining and fine-tuning in TensorFlow 2 / Keras 3.

Modules, one per stage:
  tokenization       Google-exact WordPiece tokenization (pure Python).
  text_graph         the same tokenization in-graph, with tensorflow-text.
  vocab_learning     learn a WordPiece vocabulary from a corpus.
  modeling           BertConfig, the Keras 3 encoder and its MLM/NSP heads.
  checkpoints        Google TF1, Hugging Face and TF2 checkpoint interop.
  pretrained         resolve --init_checkpoint (paths or known model names).
  pretraining_data   MLM+NSP instance creation (parallel, streaming).
  tfrecords          TFRecord writing without TensorFlow, for data workers.
  input_pipeline     tf.data for pretraining (static or dynamic masking).
  classifier_data    task processors, features, length-bucketed tf.data.
  metrics            GLUE metrics.
  optimization       AdamWeightDecay, LAMB and the learning-rate schedule.
  distribution       tf.distribute strategy construction.
  trainer            the custom training loop shared by both stages.
  pretraining        the MLM+NSP task and run_pretraining's body.
  classification     the classifier task and run_classifier's body.
  serving            SavedModels that take raw strings.
  hub                TF-Hub-format export and loading.
  embedding_service  sentence embeddings over HTTP (+ embedding_client).
  explain            integrated gradients and attention rollout.
  feature_extraction extract_features' body.
  atomic_io          files and folders that never appear half-written.
  cli                flag groups shared by the scripts.
"""

__version__ = "0.1.0"
