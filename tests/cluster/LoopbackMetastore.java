import java.net.InetSocketAddress;

import org.apache.hadoop.hive.conf.HiveConf;
import org.apache.hadoop.hive.metastore.HiveMetaStore;
import org.apache.hadoop.hive.metastore.IHMSHandler;
import org.apache.hadoop.hive.metastore.TSetIpAddressProcessor;
import org.apache.thrift.protocol.TBinaryProtocol;
import org.apache.thrift.server.TServer;
import org.apache.thrift.server.TThreadPoolServer;
import org.apache.thrift.transport.TServerSocket;
import org.apache.thrift.transport.TTransportFactory;

/**
 * A standalone Hive metastore Thrift service that listens on 127.0.0.1 only.
 *
 * <p>HiveMetaStore.main in Hive 2.3 binds every interface and has no option to choose one, so
 * this serves the same handler (HiveMetaStore.HMSHandler behind its retrying proxy) on a socket
 * bound to loopback. Arguments: the port (0 picks a free one), then key=value Hive settings.
 * Prints "listening on 127.0.0.1:PORT" once the socket is bound.
 */
public final class LoopbackMetastore {
  public static void main(String[] args) throws Exception {
    int port = Integer.parseInt(args[0]);
    HiveConf conf = new HiveConf(HiveMetaStore.HMSHandler.class);
    for (int i = 1; i < args.length; i++) {
      String[] pair = args[i].split("=", 2);
      conf.set(pair[0], pair[1]);
    }
    HiveMetaStore.HMSHandler base = new HiveMetaStore.HMSHandler("loopback metastore", conf, false);
    IHMSHandler handler = HiveMetaStore.newRetryingHMSHandler(base, conf);

    TServerSocket socket = new TServerSocket(new InetSocketAddress("127.0.0.1", port));
    TServer server = new TThreadPoolServer(
        new TThreadPoolServer.Args(socket)
            .processor(new TSetIpAddressProcessor<>(handler))
            .transportFactory(new TTransportFactory())
            .protocolFactory(new TBinaryProtocol.Factory())
            .minWorkerThreads(2)
            .maxWorkerThreads(32));
    System.out.println("listening on 127.0.0.1:" + socket.getServerSocket().getLocalPort());
    System.out.flush();
    server.serve();
  }
}
