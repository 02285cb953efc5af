import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The bench's `java-eos-passthrough` anchor (bench/README.md): the minimum exactly-once
 * consume -> produce in the Java client. A read_committed consumer group on the input
 * topic and one transactional producer; per poll one transaction holding every polled
 * record (key, value and headers unchanged, same partition number) and the consumed
 * offsets (sendOffsetsToTransaction with the consumer's group metadata).
 *
 * Prints "ready" once the producer's transactions are initialised, and a JSON line of
 * counters when it ends. It ends when its stdin closes (the bench closes it to stop it, and
 * it closes by itself if the bench dies); any error exits 1 after aborting the open transaction.
 *
 * Usage: EosPassthrough <bootstrap> <input> <output> <group> <transactional-id> <max-poll-records> <max-partition-fetch-bytes>
 */
public final class EosPassthrough {
  public static void main(String[] args) throws Exception {
    if (args.length != 7) {
      System.err.println("usage: EosPassthrough <bootstrap> <input> <output> <group> <transactional-id> <max-poll-records> <max-partition-fetch-bytes>");
      System.exit(2);
    }
    String bootstrap = args[0], input = args[1], output = args[2], group = args[3], transactionalId = args[4];

    Properties c = new Properties();
    c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    c.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    c.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    c.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, args[5]);
    c.put(ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG, args[6]);
    c.put(ConsumerConfig.CLIENT_ID_CONFIG, "bench-java-eos-passthrough");

    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
    p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    p.put(ProducerConfig.CLIENT_ID_CONFIG, "bench-java-eos-passthrough");

    AtomicBoolean stopping = new AtomicBoolean(false);
    long records = 0;
    long transactions = 0;
    int exitCode = 0;
    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(c, new ByteArrayDeserializer(), new ByteArrayDeserializer());
        KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
      Thread stdin = new Thread(() -> {
        try {
          while (System.in.read() != -1) {
            // Only the end of stdin matters.
          }
        } catch (Exception ignored) {
          // A broken stdin is an end too.
        }
        stopping.set(true);
        consumer.wakeup();
      }, "stdin-watch");
      stdin.setDaemon(true);
      producer.initTransactions();
      consumer.subscribe(List.of(input));
      stdin.start();
      System.out.println("ready");
      System.out.flush();
      boolean open = false;
      try {
        while (!stopping.get()) {
          ConsumerRecords<byte[], byte[]> polled = consumer.poll(Duration.ofMillis(100));
          if (polled.isEmpty()) continue;
          producer.beginTransaction();
          open = true;
          Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
          for (TopicPartition tp : polled.partitions()) {
            List<ConsumerRecord<byte[], byte[]>> list = polled.records(tp);
            for (ConsumerRecord<byte[], byte[]> r : list) {
              producer.send(new ProducerRecord<>(output, r.partition(), null, r.key(), r.value(), r.headers()));
            }
            offsets.put(tp, new OffsetAndMetadata(list.get(list.size() - 1).offset() + 1));
          }
          producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
          producer.commitTransaction();
          open = false;
          records += polled.count();
          transactions++;
        }
      } catch (WakeupException stop) {
        if (!stopping.get()) throw stop;
      } catch (Exception e) {
        e.printStackTrace();
        exitCode = 1;
      } finally {
        if (open) {
          try {
            producer.abortTransaction();
          } catch (Exception e) {
            e.printStackTrace();
          }
        }
      }
    }
    System.out.println("{\"records\":" + records + ",\"transactions\":" + transactions + "}");
    System.out.flush();
    System.exit(exitCode);
  }
}
