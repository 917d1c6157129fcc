// The four techniques, one module each. This list is the only place the page
// names them: the panes, the tabs, the Compare tables and the shared
// connections (connections.js) are all made from it, so a fifth technique is a
// new module plus one line here (and its words in i18n.js).

import { ShortPoll } from './short-poll.js';
import { LongPoll } from './long-poll.js';
import { Sse } from './sse.js';
import { WebSocketTransport } from './websocket.js';

export const TRANSPORTS = [ShortPoll, LongPoll, Sse, WebSocketTransport];

/** The server's names for them, in display order. */
export const KINDS = TRANSPORTS.map((module) => module.kind);

/** The module of a kind. */
export function transportOf(kind) {
  return TRANSPORTS.find((module) => module.kind === kind);
}
