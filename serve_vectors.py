"""Serves nearest neighbours of static vectors (word2vec format) over HTTP.

    python serve_vectors.py --vectors=output/items/vectors.txt --port=8126
    curl -s localhost:8126/most_similar -d '{"key": "214536502", "topn": 5}'

Any vector set in word2vec text or binary format works: the word vectors of
train_word_vectors.py, the node vectors of train_node_vectors.py, the item
vectors of train_item_vectors.py, or gensim's `save_word2vec_format`. The
answer lists the `topn` most similar keys by cosine with their scores; a key
without a vector is a 404. The HTTP server is the embedding service's
(bert_tf/embedding_service.py); bert_tf/embedding_client.py is a client.
"""

from absl import flags

from bert_tf import cli

FLAGS = flags.FLAGS

flags.DEFINE_string("vectors", None, "Vectors in word2vec text or binary format.")
flags.DEFINE_string("host", "127.0.0.1", "Address to listen on (0.0.0.0: every interface).")
flags.DEFINE_integer("port", 8126, "Port to listen on (0: any free port, printed at start).")
flags.DEFINE_integer("default_topn", 10, "Neighbours answered when a request gives no topn.")
flags.DEFINE_integer("max_topn", 1000, "Most neighbours one key may ask for.")
flags.DEFINE_integer("max_keys_per_request", 256, "Most keys in one request.")
flags.DEFINE_float("read_timeout_s", 30.0, "Seconds a client has to send one whole request "
                   "and to read its answer.")
flags.DEFINE_integer("max_connections", 1000, "Most client connections open at once.")
flags.DEFINE_integer("handler_threads", 8, "Threads that answer requests.")
flags.mark_flag_as_required("vectors")


def main(_):
    from bert_tf import embedding_service

    settings = embedding_service.NeighbourSettings(
        default_topn=FLAGS.default_topn, max_topn=FLAGS.max_topn,
        max_keys_per_request=FLAGS.max_keys_per_request)
    service = embedding_service.VectorService.from_file(FLAGS.vectors, settings)
    server = embedding_service.EmbeddingServer(
        service, FLAGS.host, FLAGS.port, read_timeout_s=FLAGS.read_timeout_s,
        max_connections=FLAGS.max_connections, handler_threads=FLAGS.handler_threads)
    print(f"Serving nearest neighbours of {len(service.words)} {service.dim}-d vectors on "
          f"{server.url}", flush=True)
    embedding_service.serve_until_signalled(server)
    print("Stopped.", flush=True)


if __name__ == "__main__":
    cli.run(main)
