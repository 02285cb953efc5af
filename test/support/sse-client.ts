/** One Server-Sent Event as a client sees it. */
export interface SseEvent {
  event: string;
  id: string | undefined;
  data: string;
}

/**
 * Reads an SSE stream with fetch (as a fetch-based browser client would) and calls `onEvent`
 * for each event until it returns false, the stream ends, or `timeoutMs` passes. Returns
 * the HTTP status, the events seen, the comments (heartbeats) and why it stopped.
 */
export async function readSse(
  url: string,
  options: { headers?: Record<string, string>; timeoutMs: number; onEvent: (event: SseEvent) => boolean },
): Promise<{ status: number; body?: unknown; events: SseEvent[]; comments: number; ended: 'client' | 'server' | 'timeout' }> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), options.timeoutMs);
  const events: SseEvent[] = [];
  let comments = 0;
  try {
    const res = await fetch(url, { headers: { accept: 'text/event-stream', ...options.headers }, signal: controller.signal });
    if (!res.ok || !res.body) return { status: res.status, body: await res.json().catch(() => undefined), events, comments, ended: 'server' };
    const decoder = new TextDecoder();
    let buffer = '';
    let current: { event: string; id: string | undefined; data: string[] } = { event: 'message', id: undefined, data: [] };
    const reader = res.body.getReader();
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (error) {
        if (controller.signal.aborted) return { status: res.status, events, comments, ended: 'timeout' };
        // The server closed the connection (e.g. after an overflow): what came before counts.
        void error;
        return { status: res.status, events, comments, ended: 'server' };
      }
      if (chunk.done) return { status: res.status, events, comments, ended: 'server' };
      buffer += decoder.decode(chunk.value as Uint8Array, { stream: true });
      let newline;
      while ((newline = buffer.indexOf('\n')) !== -1) {
        const line = buffer.slice(0, newline).replace(/\r$/, '');
        buffer = buffer.slice(newline + 1);
        if (line === '') {
          if (current.data.length > 0 || current.id !== undefined) {
            const event = { event: current.event, id: current.id, data: current.data.join('\n') };
            events.push(event);
            if (!options.onEvent(event)) {
              controller.abort();
              return { status: res.status, events, comments, ended: 'client' };
            }
          }
          current = { event: 'message', id: undefined, data: [] };
        } else if (line.startsWith(':')) comments++;
        else {
          const colon = line.indexOf(':');
          const field = colon === -1 ? line : line.slice(0, colon);
          const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'event') current.event = value;
          else if (field === 'id') current.id = value;
          else if (field === 'data') current.data.push(value);
        }
      }
    }
  } catch (error) {
    if (controller.signal.aborted) return { status: 0, events, comments, ended: 'timeout' };
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
