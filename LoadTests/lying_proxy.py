#!/usr/bin/env python3
"""A TCP proxy that lies on command.

usage: lying_proxy.py LISTEN_PORT UPSTREAM_PORT CONTROL_PORT
control (one line per TCP connection to 127.0.0.1:CONTROL_PORT, answer 'ok ...'):
  normal                 forward everything, no delay
  stall N                both directions of every current conn deliver nothing for N s (no FIN/RST)
  stallforever           as stall, until 'normal'
  rst | fin              cut every current conn (RST via SO_LINGER 0, or FIN on both sides)
  throttle BPS           each direction of every conn at most BPS bytes/s
  delay LO_MS HI_MS      each segment delivered LO..HI ms after it was read (order kept)
  blackhole_new on|off   new conns are accepted and never forwarded (upstream never dialled)
  status                 list conns
"""
import asyncio, random, socket, struct, sys, time

LP, UP, CP = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
S = dict(stall_until=0.0, throttle=0, dlo=0, dhi=0, blackhole_new=False)
CONNS = {}
NEXT = [0]


def log(*a):
    print(time.strftime('%H:%M:%S'), f'{time.time() % 60:06.3f}', *a, flush=True)


class Conn:
    def __init__(self, cid, cr, cw, ur, uw):
        self.cid, self.cr, self.cw, self.ur, self.uw = cid, cr, cw, ur, uw
        self.tasks = []
        self.bytes = [0, 0]

    def cut(self, how):
        for w in (self.cw, self.uw):
            if w is None:
                continue
            sock = w.get_extra_info('socket')
            try:
                if how == 'rst':
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
                    w.transport.abort() if hasattr(w, 'transport') else w.close()
                else:
                    w.close()
            except Exception as e:
                log('cut err', e)
        for t in self.tasks:
            t.cancel()


async def pump(conn, idx, r, w):
    q = asyncio.Queue()
    last = [0.0]

    async def reader():
        while True:
            while time.monotonic() < S['stall_until']:
                await asyncio.sleep(0.05)
            data = await r.read(4096)
            if not data:
                await q.put((0, None))
                return
            at = time.monotonic()
            if S['dhi'] > 0:
                at += random.uniform(S['dlo'], S['dhi']) / 1000
            at = max(at, last[0])
            last[0] = at
            await q.put((at, data))

    async def writer():
        while True:
            at, data = await q.get()
            if data is None:
                try:
                    w.write_eof()
                except Exception:
                    pass
                return
            while True:
                now = time.monotonic()
                if now < S['stall_until']:
                    await asyncio.sleep(0.05)
                    continue
                if now < at:
                    await asyncio.sleep(at - now)
                    continue
                break
            if S['throttle'] > 0:
                step = max(1, S['throttle'] // 20)
                for i in range(0, len(data), step):
                    while time.monotonic() < S['stall_until']:
                        await asyncio.sleep(0.05)
                    w.write(data[i:i + step])
                    await w.drain()
                    await asyncio.sleep(step / S['throttle'])
            else:
                w.write(data)
                await w.drain()
            conn.bytes[idx] += len(data)

    try:
        await asyncio.gather(reader(), writer())
    except (ConnectionError, asyncio.CancelledError, OSError) as e:
        log(f'conn {conn.cid} dir {idx} ended', type(e).__name__)
    finally:
        pass


async def handle(cr, cw):
    NEXT[0] += 1
    cid = NEXT[0]
    log(f'conn {cid} accepted from {cw.get_extra_info("peername")}', 'BLACKHOLE' if S['blackhole_new'] else '')
    if S['blackhole_new']:
        conn = Conn(cid, cr, cw, None, None)
        CONNS[cid] = conn
        try:
            while await cr.read(4096):
                pass
        except Exception:
            pass
        log(f'conn {cid} (blackholed) closed by client')
        CONNS.pop(cid, None)
        return
    try:
        ur, uw = await asyncio.open_connection('127.0.0.1', UP)
    except Exception as e:
        log(f'conn {cid} upstream dial failed {e}')
        cw.close()
        return
    conn = Conn(cid, cr, cw, ur, uw)
    CONNS[cid] = conn
    t1 = asyncio.ensure_future(pump(conn, 0, cr, uw))
    t2 = asyncio.ensure_future(pump(conn, 1, ur, cw))
    conn.tasks = [t1, t2]
    await asyncio.wait([t1, t2], return_when=asyncio.ALL_COMPLETED)
    for w in (cw, uw):
        try:
            w.close()
        except Exception:
            pass
    log(f'conn {cid} closed bytes c->u {conn.bytes[0]} u->c {conn.bytes[1]}')
    CONNS.pop(cid, None)


async def control(r, w):
    line = (await r.readline()).decode().split()
    out = 'ok'
    if not line:
        out = 'empty'
    elif line[0] == 'normal':
        S.update(stall_until=0.0, throttle=0, dlo=0, dhi=0, blackhole_new=False)
    elif line[0] == 'stall':
        S['stall_until'] = time.monotonic() + float(line[1])
    elif line[0] == 'stallforever':
        S['stall_until'] = time.monotonic() + 1e9
    elif line[0] in ('rst', 'fin'):
        for c in list(CONNS.values()):
            c.cut(line[0])
        out = f'ok cut {len(CONNS)}'
    elif line[0] == 'throttle':
        S['throttle'] = int(line[1])
    elif line[0] == 'delay':
        S['dlo'], S['dhi'] = int(line[1]), int(line[2])
    elif line[0] == 'blackhole_new':
        S['blackhole_new'] = line[1] == 'on'
    elif line[0] == 'status':
        out = 'ok ' + ' '.join(f'{k}:{v.bytes}' for k, v in CONNS.items())
    log('control', line, out)
    w.write((out + '\n').encode())
    await w.drain()
    w.close()


async def main():
    s1 = await asyncio.start_server(handle, '127.0.0.1', LP)
    s2 = await asyncio.start_server(control, '127.0.0.1', CP)
    log(f'listening {LP} -> {UP}, control {CP}')
    await asyncio.gather(s1.serve_forever(), s2.serve_forever())

asyncio.run(main())
