"""bert_tf: BERT pretraining and fine-tuning in TensorFlow 2 / Keras 3.

Modules, one per stage:
  tokenization       Google-exact WordPiece tokenization (pure Python).
  text_graph         the same tokenization in-graph, with tensorflow-text.
  vocab_learning     learn a WordPiece vocabulary from a corpus.
  modeling           BertConfig, the Keras 3 encoder and its MLM/NSP heads.
  checkpoints        Google TF1, Hugging Face and TF2 checkpoint interop.
  pretrained         resolve --init_checkpoint (paths or known model names).
  pretraining_data   MLM+NSP instance creation and TFRecord writing.
  input_pipeline     tf.data pipelines for pretraining and classification.
  classifier_data    GLUE-style task processors and feature conversion.
  metrics            GLUE metrics.
  optimization       AdamWeightDecay, LAMB and the learning-rate schedule.
  distribution       tf.distribute strategy construction.
  trainer            the custom training loop shared by both stages.
"""

__version__ = "0.1.0"
