// Older messages in the console (issue 32): the history opens on the latest page; scrolling
// to the top of the messages loads the page before it (`messages:history` with
// `before_seq`), kept in place on screen, until the first message.
const $ = (id) => document.getElementById(id);

export const PAGE = 100;

export class OlderMessages {
  // host: { call(event, payload) -> ack, stream, current, render(keepScroll) }
  constructor(host) {
    this.host = host;
    this.loading = false;
  }

  attach() {
    $("messages").addEventListener("scroll", () => { if ($("messages").scrollTop < 40) this.load(); });
  }

  // true while older messages than those shown exist
  get more() { return this.host.stream.base > 0; }

  async load() {
    const id = this.host.current;
    const stream = this.host.stream;
    if (this.loading || !id || !this.more) return;
    this.loading = true;
    try {
      const h = await this.host.call("messages:history", { conversation_id: id, before_seq: stream.base + 1, limit: PAGE });
      if (!h.ok || this.host.current !== id || h.epoch !== stream.epoch) return;
      stream.prepend(h.messages);
      this.host.render(true);
    } finally {
      this.loading = false;
    }
  }

  // after a conversation is shown: load until the box can scroll (a short first page)
  async fill() {
    const box = $("messages");
    while (this.more && box.scrollHeight <= box.clientHeight && !this.loading) {
      const base = this.host.stream.base;
      await this.load();
      if (this.host.stream.base === base) return;
    }
  }
}
