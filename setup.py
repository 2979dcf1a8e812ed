"""Installs bert_tf: BERT pretraining and fine-tuning in TensorFlow 2 / Keras 3."""

from setuptools import find_packages, setup

setup(
    name="bert_tf",
    version="0.1.0",
    description="BERT pretraining and fine-tuning in TensorFlow 2 / Keras 3, "
                "compatible with Google's checkpoints and flags.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["bert_tf", "bert_tf.*"]),
    py_modules=[
        "create_pretraining_data", "run_pretraining", "run_classifier",
        "extract_features", "learn_vocab", "export_hub", "serve_embeddings", "explain",
        "run_squad", "generate", "create_lm_data", "run_lm",
        "train_word_vectors", "train_node_vectors", "train_item_vectors", "serve_vectors",
    ],
    install_requires=[
        # tensorflow-text is built against one TensorFlow minor version.
        "tensorflow>=2.21,<2.22",
        "tensorflow-text>=2.21,<2.22",
        "tensorflow-hub>=0.16,<0.17",
        "keras>=3.10,<4",
        "tensorboard>=2.21,<2.22",
        "absl-py>=2.0",
        "numpy>=1.26",
        "safetensors>=0.4",
        # GPT-2's pre-tokenization needs Unicode classes (\p{L}, \p{N}) that `re` lacks.
        "regex>=2023.0",
        # tensorflow-hub 0.16 imports pkg_resources, which setuptools 81 removed.
        "setuptools<81",
    ],
    extras_require={
        # Chinese whole-word masking with an automatic word segmenter.
        "zh": ["jieba>=0.42"],
        # Independent references used by the tests. PyTorch is pinned to the
        # release whose CPU wheel the build machines carry; elsewhere install
        # it from https://download.pytorch.org/whl/cpu first (the default
        # wheel is a multi-GB CUDA build).
        "test": ["pytest>=8", "torch==2.13.0", "transformers>=5,<6", "jieba>=0.42",
                 "scikit-learn>=1.3", "scipy>=1.10",
                 # word2vec's reference implementation, for the static embeddings.
                 "gensim>=4.4,<5", "networkx>=3",
                 # Google's own tokenization.py, the reference for the tokenizer tests.
                 "bert-tensorflow==1.0.4",
                 "nbclient>=0.10", "nbformat>=5.9", "ipykernel>=6.29", "matplotlib>=3.7"],
        # Running the notebooks in notebooks/ outside Jupyter (the Cora one plots).
        "notebooks": ["nbclient>=0.10", "nbformat>=5.9", "ipykernel>=6.29", "matplotlib>=3.7"],
        # Peers that the benchmarks compare against.
        "bench": ["keras-hub>=0.20", "transformers>=5,<6", "psutil", "gensim>=4.4,<5"],
    },
)
