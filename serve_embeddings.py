"""Serves sentence embeddings of a BERT encoder as JSON over HTTP.

    python serve_embeddings.py --init_checkpoint=minilm-l6-h384-uncased \
        --port=8125 --pooling_strategy=mean --max_seq_len=64
    curl -s localhost:8125/encode -d '{"texts": ["hello world"]}'

Concurrent requests are batched together on the model; slow clients are
cut off after --read_timeout_s and at most --max_connections are open at
once; SIGTERM or Ctrl-C stops the server after the requests in flight.
See bert_tf/embedding_service.py for the pooling strategies and
bert_tf/embedding_client.py for a client.
"""

from absl import flags

from bert_tf import cli

FLAGS = flags.FLAGS

flags.DEFINE_string("host", "127.0.0.1", "Address to listen on (0.0.0.0: every interface).")
flags.DEFINE_integer("port", 8125, "Port to listen on (0: any free port, printed at start).")
flags.DEFINE_enum("pooling_strategy", "mean",
                  ["mean", "max", "mean_max", "cls", "first_token", "last_token", "none"],
                  "How token vectors become one vector per text.")
flags.DEFINE_integer("pooling_layer", -1, "Encoder layer to pool (negative counts from the top).")
flags.DEFINE_integer("max_batch_size", 64, "Most texts the model runs at once "
                     "(1 turns batching across requests off).")
flags.DEFINE_integer("max_texts_per_request", 256, "Most texts in one request.")
flags.DEFINE_integer("max_chars", 10000, "Most characters in one text.")
flags.DEFINE_float("batch_wait_ms", 2.0, "How long the model waits for more texts to batch.")
flags.DEFINE_float("read_timeout_s", 30.0, "Seconds a client has to send one whole request "
                   "(head and body) and to read its answer; slower ones get 408 and are "
                   "dropped, idle keep-alive connections are closed.")
flags.DEFINE_integer("max_connections", 1000, "Most client connections open at once; the "
                     "next ones get 503 (each costs a socket, not a thread).")
flags.DEFINE_integer("handler_threads", 32, "Threads that parse, tokenize and wait for the "
                     "model; also the most requests being answered at once.")
cli.define_model_flags()
cli.define_control_chars_flag()
flags.DEFINE_alias("max_seq_len", "max_seq_length")
FLAGS.set_default("max_seq_length", 64)


def main(_):
    from bert_tf import embedding_service

    source = cli.pretrained_from_flags(FLAGS)
    settings = embedding_service.ServiceSettings(
        pooling_strategy=FLAGS.pooling_strategy, pooling_layer=FLAGS.pooling_layer,
        max_seq_len=FLAGS.max_seq_length, max_batch_size=FLAGS.max_batch_size,
        max_texts_per_request=FLAGS.max_texts_per_request, max_chars=FLAGS.max_chars,
        batch_wait_ms=FLAGS.batch_wait_ms)
    service = embedding_service.EmbeddingService.from_pretrained(
        source, settings, model_name=FLAGS.init_checkpoint or "",
        control_chars=FLAGS.control_chars)
    server = embedding_service.EmbeddingServer(
        service, FLAGS.host, FLAGS.port, read_timeout_s=FLAGS.read_timeout_s,
        max_connections=FLAGS.max_connections, handler_threads=FLAGS.handler_threads)
    print(f"Serving {service.dim}-d {settings.pooling_strategy} embeddings on {server.url}",
          flush=True)
    embedding_service.serve_until_signalled(server)
    print("Stopped.", flush=True)


if __name__ == "__main__":
    cli.run(main)
