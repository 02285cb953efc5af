import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CountDownLatch;
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
 * With a warm-up topic pair it first passes the warm-up input through the same way (group
 * `<group>-warm`) until it has caught up with its end offsets, so the JIT is warm before
 * anything is measured. Then it prints "warm" and waits for a line "start" on stdin before
 * it joins the input's group. It prints a JSON line of counters when it ends. It ends when
 * its stdin closes (the bench closes it to stop it, and it closes by itself if the bench
 * dies); any error exits 1 after aborting the open transaction.
 *
 * Usage: EosPassthrough <bootstrap> <input> <output> <group> <transactional-id> <max-poll-records> <max-partition-fetch-bytes> [<warm-up input> <warm-up output>]
 */
public final class EosPassthrough {
  public static void main(String[] args) throws Exception {
    if (args.length != 7 && args.length != 9) {
      System.err.println("usage: EosPassthrough <bootstrap> <input> <output> <group> <transactional-id> <max-poll-records> <max-partition-fetch-bytes> [<warm-up input> <warm-up output>]");
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
    CountDownLatch go = new CountDownLatch(1);
    long[] counters = new long[2]; // records, transactions (of the measured input only)
    int exitCode = 0;
    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(c, new ByteArrayDeserializer(), new ByteArrayDeserializer());
        KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
      Thread stdin = new Thread(() -> {
        try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
          String line;
          while ((line = in.readLine()) != null) {
            if (line.trim().equals("start")) go.countDown();
          }
        } catch (Exception ignored) {
          // A broken stdin is an end too.
        }
        stopping.set(true);
        go.countDown();
        consumer.wakeup();
      }, "stdin-watch");
      stdin.setDaemon(true);
      stdin.start();
      try {
        producer.initTransactions();
        if (args.length == 9) {
          Properties w = new Properties();
          w.putAll(c);
          w.put(ConsumerConfig.GROUP_ID_CONFIG, group + "-warm");
          try (KafkaConsumer<byte[], byte[]> warm = new KafkaConsumer<>(w, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            warm.subscribe(List.of(args[7]));
            Map<TopicPartition, Long> ends = null;
            while (!stopping.get()) {
              ConsumerRecords<byte[], byte[]> polled = warm.poll(Duration.ofMillis(100));
              if (!polled.isEmpty()) transact(warm, producer, args[8], polled);
              if (warm.assignment().isEmpty()) continue;
              if (ends == null) ends = warm.endOffsets(warm.assignment());
              boolean caughtUp = true;
              for (Map.Entry<TopicPartition, Long> e : ends.entrySet()) caughtUp &= warm.position(e.getKey()) >= e.getValue();
              if (caughtUp) break;
            }
          }
        }
        System.out.println("warm");
        System.out.flush();
        go.await();
        consumer.subscribe(List.of(input));
        while (!stopping.get()) {
          ConsumerRecords<byte[], byte[]> polled = consumer.poll(Duration.ofMillis(100));
          if (polled.isEmpty()) continue;
          transact(consumer, producer, output, polled);
          counters[0] += polled.count();
          counters[1]++;
        }
      } catch (WakeupException stop) {
        if (!stopping.get()) throw stop;
      } catch (Exception e) {
        e.printStackTrace();
        exitCode = 1;
      }
    }
    System.out.println("{\"records\":" + counters[0] + ",\"transactions\":" + counters[1] + "}");
    System.out.flush();
    System.exit(exitCode);
  }

  /** One transaction: every polled record to the same partition of `output`, and the consumed offsets. Aborted on any error. */
  private static void transact(KafkaConsumer<byte[], byte[]> consumer, KafkaProducer<byte[], byte[]> producer, String output, ConsumerRecords<byte[], byte[]> polled) {
    producer.beginTransaction();
    try {
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
    } catch (RuntimeException e) {
      try {
        producer.abortTransaction();
      } catch (RuntimeException abort) {
        e.addSuppressed(abort);
      }
      throw e;
    }
  }
}
