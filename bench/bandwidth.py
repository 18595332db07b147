"""Raw TCP bandwidth between two nodes: `serve PORT` receives and discards;
`send HOST PORT MIB` sends MIB mebibytes and prints MB/s."""
import socket
import sys
import time

CHUNK = 1 << 20

if sys.argv[1] == "serve":
    listener = socket.create_server(("0.0.0.0", int(sys.argv[2])))
    while True:
        conn, _ = listener.accept()
        buffer = bytearray(CHUNK)
        while conn.recv_into(buffer):
            pass
        conn.close()
else:
    host, port, mib = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    conn = socket.create_connection((host, port))
    block = bytes(CHUNK)
    start = time.perf_counter()
    for _ in range(mib):
        conn.sendall(block)
    conn.shutdown(socket.SHUT_WR)
    conn.recv(1)
    elapsed = time.perf_counter() - start
    print(f"bandwidth {mib * CHUNK / elapsed / 1e6:.0f}")
