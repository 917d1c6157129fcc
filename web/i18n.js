// The page's words in English and 中文.
//
// Markup names its text with data-i18n="key" (the element's text) and
// data-i18n-attr="attribute:key;attribute:key" (title, aria-label, placeholder).
// Text with numbers in it carries data-i18n-params='{"cursor":41}' and the
// dictionary writes {cursor} where the number goes. apply() rewrites every such
// element, so switching language switches everything, including notices
// already in the message lists.

export const LANGUAGES = ['en', 'zh'];

export const dictionary = {
  en: {
    'page.title': 'pushlab: four ways to push',
    'tagline': 'One chat, delivered four ways at once: short polling, long polling, Server-Sent Events and WebSocket. Watch what each one costs.',
    'skip': 'Skip to the composer',
    'room.form': 'Choose a room',
    'room.label': 'Room',
    'room.go': 'Go',
    'room.title': 'Each room is its own chat: 1–64 letters, digits, - and _.',
    'room.invalid': 'A room name is 1–64 letters, digits, - and _.',
    'room.now': 'Now in room {room}.',
    'lang.switch': '中文',
    'lang.label': 'Switch the page to Chinese',
    'role.starting': 'connecting…',
    'role.leader': 'this tab holds the connections',
    'role.follower': 'sharing another tab’s connections',
    'role.title': 'Browsers allow 6 HTTP/1.1 connections per site, so one tab holds the connections and the others share them (see docs/page.md).',
    'carriers.one': 'this browser: 1 TCP connection ({http})',
    'carriers.many': 'this browser: {connections} TCP connections ({http})',
    'carriers.title': 'The TCP connections this browser’s transports use, as the server sees them. Over HTTP/1.1 each held stream needs its own; over HTTP/2 (HTTPS, --tls) they all share one.',
    'carrier': '{http} · connection {connection}',
    'carrier.title': 'The HTTP version of this transport’s latest request, and the number the server gave the TCP connection it came on.',
    'tabs.label': 'Views',
    'tab.side': 'Side by side',
    'tab.compare': 'Compare',
    'name.short_poll': 'Short polling',
    'name.long_poll': 'Long polling',
    'name.sse': 'Server-Sent Events',
    'name.websocket': 'WebSocket',
    'composer.label': 'Send a message',
    'composer.author': 'Name',
    'composer.text': 'Message',
    'composer.placeholder': 'Type a message and press Enter',
    'composer.via': 'Send over',
    'composer.http': 'HTTP POST',
    'composer.websocket': 'WebSocket',
    'composer.send': 'Send',
    'composer.sent': 'Sent as #{id} over {via}.',
    'composer.sentWs': 'Sent over the WebSocket; it comes back as a message like everyone else’s.',
    'composer.error': 'Not sent: {error}',
    'composer.noSocket': 'Not sent: the WebSocket is not connected. Connect it, or send over HTTP.',
    'composer.network': 'Not sent: the server did not answer.',
    'state.connecting': 'connecting',
    'state.connected': 'connected',
    'state.reconnecting': 'reconnecting',
    'state.dropped': 'dropped',
    'state.disconnected': 'disconnected',
    'meter.requests': 'HTTP requests',
    'meter.empty': 'Empty responses',
    'meter.bytes': 'Bytes received',
    'meter.latency': 'Latency, last',
    'meter.median': 'Latency, median',
    'meter.messages': 'Messages received',
    'meter.integrity': 'lost / duplicated',
    'meter.na': 'n/a',
    'bytes.fetch': 'Response bodies only: the HTTP headers of every response are not counted (fetch cannot see their size).',
    'bytes.sse': 'The data: lines of each event only: the id:/event: framing and the response headers are not counted.',
    'bytes.websocket': 'The payload of each frame only: 2–14 bytes of frame header and the upgrade response are not counted.',
    'empty.stream': 'One response that never ends: there are no empty responses.',
    'pane.drop': 'Drop connection',
    'pane.dropTitle': 'Cut the connection as a network fault would; it resumes from its cursor 2 s later.',
    'pane.connect': 'Connect',
    'pane.disconnect': 'Disconnect',
    'pane.messages': 'Messages received by {name}',
    'pane.interval': 'Poll every',
    'pane.cursor': 'cursor {cursor}',
    'notice.dropped': 'Connection dropped at cursor {cursor}. Resuming in {seconds} s…',
    'notice.resumed': 'Resumed from cursor {cursor}: everything after it follows, nothing lost.',
    'notice.reset': 'Reset: the server could not resume from cursor {cursor} (it restarted, or no longer holds what came after it); carrying on from the oldest message it still holds.',
    'notice.error': 'Connection failed ({error}); retrying from cursor {cursor}.',
    'message.via': 'sent via {via}',
    'message.latency': '{ms} ms',
    'wire.title': 'Wire log',
    'wire.note': 'What actually crossed the network, newest first: → from the browser, ← from the server, • what only the page saw (aborts, failures, retries). Open a row for its bytes, as the server read and wrote them.',
    'wire.time': 'time',
    'wire.dir': 'dir',
    'wire.size': 'size',
    'wire.summary': 'what',
    'wire.held': '(held {ms} ms)',
    'wire.after': '(after {ms} ms)',
    'wire.missed': '{n} earlier rows were dropped: the server keeps the newest 500',
    'explain.title': 'How it works',
    'explain.good': 'Strengths',
    'explain.cost': 'Costs',
    'explain.short_poll.how': 'Every few seconds the browser asks GET /api/messages?since=<cursor>, and the server answers at once with what is newer than the cursor — usually nothing. The answer’s last_id is the cursor for the next question.',
    'explain.short_poll.good': 'The simplest thing that works: plain requests, any server, any proxy, no connection held open. Easy to cache, retry and debug.',
    'explain.short_poll.cost': 'One full request and response per interval per client, most of them empty. Latency up to one interval: move the slider and watch requests and latency trade against each other.',
    'explain.long_poll.how': 'The browser asks GET /api/messages/long-poll?since=<cursor>&timeout=25. If nothing is newer the server holds the request open until a message is published or the timeout passes, then answers; the browser asks again at once.',
    'explain.long_poll.good': 'Near real-time with ordinary HTTP requests: no empty answers except timeouts, works through proxies that understand plain requests.',
    'explain.long_poll.cost': 'One request per message burst, and one connection held per client all the time (a parked request on the server, one of the browser’s 6 per origin). A brief gap between answer and next request; the cursor covers it.',
    'explain.sse.how': 'EventSource sends one request, GET /api/events?since=<cursor>, and the server keeps the response open, writing each message as an event with an id:. On a break the browser reconnects by itself and sends Last-Event-ID, so the stream resumes where it stopped.',
    'explain.sse.good': 'Real-time push over plain HTTP, a few bytes of framing per message, reconnection and resume built into the browser.',
    'explain.sse.cost': 'One way only: the browser sends with a separate POST. Text only. One long-lived connection per client, one of the browser’s 6 per origin over HTTP/1.1; buffering proxies must be told not to buffer.',
    'explain.websocket.how': 'One HTTP request upgrades to the WebSocket protocol (101 Switching Protocols); after that the same TCP connection carries small frames both ways: the server pushes {"type":"message"}, the browser sends {"type":"send"}.',
    'explain.websocket.good': 'Full duplex and real-time: the only one here where the browser sends without a new request. Smallest framing, not counted against the 6 HTTP connections.',
    'explain.websocket.cost': 'A protocol of its own: some proxies and firewalls block it, load balancers must allow long-lived upgrades, and reconnecting and resuming are up to the application (this page does it from the cursor).',
    'compare.title': 'The four techniques',
    'compare.technique': 'Technique',
    'compare.protocol': 'Protocol',
    'compare.sender': 'Who can send',
    'compare.latency': 'Latency',
    'compare.cost': 'Cost',
    'compare.strengths': 'Strengths',
    'compare.weaknesses': 'Weaknesses',
    'cmp.short_poll.protocol': 'HTTP, one request per interval',
    'cmp.short_poll.sender': 'Client asks; server only answers',
    'cmp.short_poll.latency': 'Up to one interval',
    'cmp.short_poll.cost': 'A request per interval per client, mostly empty',
    'cmp.short_poll.strengths': 'Simplest; works everywhere; no held connections',
    'cmp.short_poll.weaknesses': 'Wasteful; slow or expensive, pick one',
    'cmp.long_poll.protocol': 'HTTP, request held until data or timeout',
    'cmp.long_poll.sender': 'Client asks; server answers when it has news',
    'cmp.long_poll.latency': 'Near real-time',
    'cmp.long_poll.cost': 'A request per burst; a held connection per client',
    'cmp.long_poll.strengths': 'Push over plain requests; few empty answers',
    'cmp.long_poll.weaknesses': 'Held requests on the server; reconnect gap; timeouts to tune',
    'cmp.sse.protocol': 'HTTP, one streamed response (text/event-stream)',
    'cmp.sse.sender': 'Server pushes; client sends with separate requests',
    'cmp.sse.latency': 'Real-time',
    'cmp.sse.cost': 'One held connection per client; tiny framing',
    'cmp.sse.strengths': 'Simple; automatic reconnect and resume (Last-Event-ID)',
    'cmp.sse.weaknesses': 'One way; text only; counts against 6 connections per origin on HTTP/1.1',
    'cmp.websocket.protocol': 'HTTP upgrade, then WebSocket frames over the same TCP connection',
    'cmp.websocket.sender': 'Both, at any time (full duplex)',
    'cmp.websocket.latency': 'Real-time',
    'cmp.websocket.cost': 'One held connection per client; 2–14 bytes per frame',
    'cmp.websocket.strengths': 'Two-way; least overhead per message',
    'cmp.websocket.weaknesses': 'Own protocol: proxies may block it; reconnect and resume are the app’s job',
    'live.title': 'Live figures',
    'live.note': 'Left: measured by this page. Right: counted by the server for all clients (GET /api/stats).',
    'live.page': 'This page',
    'live.server': 'Server, all clients',
    'live.requests': 'requests',
    'live.empty': 'empty',
    'live.bytes': 'bytes received',
    'live.messages': 'messages',
    'live.perMessage': 'bytes per message',
    'live.requestsPerMessage': 'requests per message',
    'live.median': 'median latency',
    'live.open': 'open',
    'live.serverRequests': 'requests',
    'live.delivered': 'delivered',
    'live.bytesSent': 'bytes sent',
    'live.hub': 'Hub: newest id {lastId}, {retained} messages retained.',
    'live.noStats': 'Server figures not available yet.',
    'online.title': 'Who is online',
    'online.empty': 'Nobody yet.',
    'online.you': '(you)',
    'online.note': 'Push clients while connected, pollers while they polled in the last few seconds. All tabs of one browser share one connection set, so they appear once.',
    'footer.latency': 'Latency is the time from the server’s sent_at to this page showing the message; it assumes the server’s clock and this computer’s agree. Messages older than this page are not measured.',
    'footer.source': 'pushlab serves the same chat through all four transports; the code of each is in web/transports/ and src/transport/.',
  },
  zh: {
    'page.title': 'pushlab：服务器推送的四种方式',
    'tagline': '同一个聊天，同时用四种方式送达：短轮询、长轮询、Server-Sent Events 和 WebSocket。看看每一种的代价。',
    'skip': '跳到输入框',
    'room.form': '选择房间',
    'room.label': '房间',
    'room.go': '进入',
    'room.title': '每个房间是一个独立的聊天：1–64 个字母、数字、- 和 _。',
    'room.invalid': '房间名为 1–64 个字母、数字、- 和 _。',
    'room.now': '现在在房间 {room}。',
    'lang.switch': 'English',
    'lang.label': '将页面切换为英文',
    'role.starting': '连接中…',
    'role.leader': '本标签页持有连接',
    'role.follower': '共享另一个标签页的连接',
    'role.title': '浏览器对每个站点最多开 6 个 HTTP/1.1 连接，所以由一个标签页持有连接，其他标签页共享（见 docs/page.md）。',
    'carriers.one': '本浏览器：1 条 TCP 连接（{http}）',
    'carriers.many': '本浏览器：{connections} 条 TCP 连接（{http}）',
    'carriers.title': '服务器看到的本浏览器各传输方式所用的 TCP 连接。HTTP/1.1 下每个挂起的流各占一条；HTTP/2（HTTPS，--tls）下全部共用一条。',
    'carrier': '{http} · 连接 {connection}',
    'carrier.title': '该传输方式最近一次请求的 HTTP 版本，以及服务器给它所在 TCP 连接的编号。',
    'tabs.label': '视图',
    'tab.side': '并排对比',
    'tab.compare': '比较',
    'name.short_poll': '短轮询',
    'name.long_poll': '长轮询',
    'name.sse': 'Server-Sent Events',
    'name.websocket': 'WebSocket',
    'composer.label': '发送消息',
    'composer.author': '名字',
    'composer.text': '消息',
    'composer.placeholder': '输入消息，按回车发送',
    'composer.via': '发送方式',
    'composer.http': 'HTTP POST',
    'composer.websocket': 'WebSocket',
    'composer.send': '发送',
    'composer.sent': '已通过 {via} 发送，编号 #{id}。',
    'composer.sentWs': '已通过 WebSocket 发送；它会像其他人的消息一样被推送回来。',
    'composer.error': '未发送：{error}',
    'composer.noSocket': '未发送：WebSocket 未连接。请先连接，或改用 HTTP 发送。',
    'composer.network': '未发送：服务器没有响应。',
    'state.connecting': '连接中',
    'state.connected': '已连接',
    'state.reconnecting': '重新连接中',
    'state.dropped': '断线中',
    'state.disconnected': '未连接',
    'meter.requests': 'HTTP 请求数',
    'meter.empty': '空响应',
    'meter.bytes': '接收字节',
    'meter.latency': '最近延迟',
    'meter.median': '延迟中位数',
    'meter.messages': '收到消息',
    'meter.integrity': '丢失 / 重复',
    'meter.na': '不适用',
    'bytes.fetch': '只计响应体：每个响应的 HTTP 头不计入（fetch 看不到它们的大小）。',
    'bytes.sse': '只计每个事件的 data: 行：id:/event: 帧和响应头不计入。',
    'bytes.websocket': '只计每帧的载荷：2–14 字节的帧头和升级响应不计入。',
    'empty.stream': '一个永不结束的响应：没有空响应。',
    'pane.drop': '模拟断线',
    'pane.dropTitle': '像网络故障那样切断连接；2 秒后从游标处恢复。',
    'pane.connect': '连接',
    'pane.disconnect': '断开',
    'pane.messages': '{name} 收到的消息',
    'pane.interval': '轮询间隔',
    'pane.cursor': '游标 {cursor}',
    'notice.dropped': '连接在游标 {cursor} 处断开，{seconds} 秒后恢复…',
    'notice.resumed': '已从游标 {cursor} 恢复：之后的消息全部补上，没有丢失。',
    'notice.reset': '重置：服务器无法从游标 {cursor} 继续（它重启过，或已不再保留其后的消息）；从它仍保留的最早消息继续。',
    'notice.error': '连接失败（{error}）；从游标 {cursor} 重试。',
    'message.via': '经 {via} 发送',
    'message.latency': '{ms} 毫秒',
    'wire.title': '线路日志',
    'wire.note': '真正经过网络的内容，最新的在上：→ 浏览器发出，← 服务器发来，• 只有页面看得到的事（中止、失败、重试）。展开一行可看到服务器读写的原始字节。',
    'wire.time': '时间',
    'wire.dir': '方向',
    'wire.size': '大小',
    'wire.summary': '内容',
    'wire.held': '（挂起 {ms} 毫秒）',
    'wire.after': '（{ms} 毫秒后）',
    'wire.missed': '更早的 {n} 行已被丢弃：服务器只保留最新的 500 行',
    'explain.title': '工作原理',
    'explain.good': '优点',
    'explain.cost': '代价',
    'explain.short_poll.how': '浏览器每隔几秒请求一次 GET /api/messages?since=<游标>，服务器立即回答比游标新的消息——通常什么也没有。回答里的 last_id 就是下一次请求的游标。',
    'explain.short_poll.good': '最简单可行：普通请求，任何服务器、任何代理都能用，不占用长连接。易于缓存、重试和调试。',
    'explain.short_poll.cost': '每个客户端每个间隔一次完整的请求和响应，大多是空的。延迟最多一个间隔：拖动滑块，看请求数和延迟如何此消彼长。',
    'explain.long_poll.how': '浏览器请求 GET /api/messages/long-poll?since=<游标>&timeout=25。如果没有新消息，服务器把请求挂起，直到有消息发布或超时才回答；浏览器随即再次请求。',
    'explain.long_poll.good': '用普通 HTTP 请求做到接近实时：除了超时没有空响应，能通过理解普通请求的代理。',
    'explain.long_poll.cost': '每批消息一次请求，每个客户端始终占用一个连接（服务器上一个挂起的请求，浏览器每个站点 6 个连接之一）。回答与下一次请求之间有短暂空档，由游标补上。',
    'explain.sse.how': 'EventSource 发出一个请求 GET /api/events?since=<游标>，服务器保持响应不结束，把每条消息写成带 id: 的事件。断线时浏览器自动重连并发送 Last-Event-ID，事件流从断开处继续。',
    'explain.sse.good': '基于普通 HTTP 的实时推送，每条消息只有几个字节的帧开销，重连和续传由浏览器内置完成。',
    'explain.sse.cost': '只能单向：浏览器要用另外的 POST 发送。只能传文本。每个客户端一个长连接，在 HTTP/1.1 下占浏览器每站点 6 个连接之一；会缓冲的代理必须关闭缓冲。',
    'explain.websocket.how': '一个 HTTP 请求升级为 WebSocket 协议（101 Switching Protocols）；之后同一个 TCP 连接双向传输小帧：服务器推送 {"type":"message"}，浏览器发送 {"type":"send"}。',
    'explain.websocket.good': '全双工、实时：四种里唯一一种浏览器发送时不需要新请求的方式。帧开销最小，不占 6 个 HTTP 连接的名额。',
    'explain.websocket.cost': '自成一套协议：有些代理和防火墙会拦截，负载均衡器要允许长时间的升级连接，重连和续传要由应用自己做（本页从游标恢复）。',
    'compare.title': '四种技术',
    'compare.technique': '技术',
    'compare.protocol': '通信协议',
    'compare.sender': '谁能发送',
    'compare.latency': '延迟',
    'compare.cost': '开销',
    'compare.strengths': '优点',
    'compare.weaknesses': '缺点',
    'cmp.short_poll.protocol': 'HTTP，每个间隔一次请求',
    'cmp.short_poll.sender': '客户端询问，服务器只回答',
    'cmp.short_poll.latency': '最多一个间隔',
    'cmp.short_poll.cost': '每客户端每间隔一次请求，大多为空',
    'cmp.short_poll.strengths': '最简单；到处可用；不占长连接',
    'cmp.short_poll.weaknesses': '浪费；要么慢要么贵，只能选一个',
    'cmp.long_poll.protocol': 'HTTP，请求挂起直到有数据或超时',
    'cmp.long_poll.sender': '客户端询问，服务器有消息时回答',
    'cmp.long_poll.latency': '接近实时',
    'cmp.long_poll.cost': '每批消息一次请求；每客户端一个挂起的连接',
    'cmp.long_poll.strengths': '用普通请求实现推送；空响应少',
    'cmp.long_poll.weaknesses': '服务器上挂起请求；重连空档；超时需要调整',
    'cmp.sse.protocol': 'HTTP，一个流式响应（text/event-stream）',
    'cmp.sse.sender': '服务器推送；客户端用另外的请求发送',
    'cmp.sse.latency': '实时',
    'cmp.sse.cost': '每客户端一个长连接；帧开销极小',
    'cmp.sse.strengths': '简单；自动重连和续传（Last-Event-ID）',
    'cmp.sse.weaknesses': '单向；只能传文本；HTTP/1.1 下占每站点 6 个连接之一',
    'cmp.websocket.protocol': 'HTTP 升级，之后在同一 TCP 连接上传 WebSocket 帧',
    'cmp.websocket.sender': '双方随时都可以（全双工）',
    'cmp.websocket.latency': '实时',
    'cmp.websocket.cost': '每客户端一个长连接；每帧 2–14 字节',
    'cmp.websocket.strengths': '双向；每条消息开销最小',
    'cmp.websocket.weaknesses': '独立协议：代理可能拦截；重连和续传由应用负责',
    'live.title': '实时数据',
    'live.note': '左边：本页测得。右边：服务器为所有客户端统计（GET /api/stats）。',
    'live.page': '本页',
    'live.server': '服务器（所有客户端）',
    'live.requests': '请求',
    'live.empty': '空响应',
    'live.bytes': '接收字节',
    'live.messages': '消息',
    'live.perMessage': '每条消息字节数',
    'live.requestsPerMessage': '每条消息请求数',
    'live.median': '延迟中位数',
    'live.open': '打开',
    'live.serverRequests': '请求',
    'live.delivered': '已送达',
    'live.bytesSent': '发送字节',
    'live.hub': '消息中心：最新编号 {lastId}，保留 {retained} 条消息。',
    'live.noStats': '暂时没有服务器数据。',
    'online.title': '在线用户',
    'online.empty': '还没有人。',
    'online.you': '（你）',
    'online.note': '推送客户端在连接期间显示，轮询客户端在最近几秒内轮询过才显示。同一浏览器的所有标签页共用一组连接，所以只出现一次。',
    'footer.latency': '延迟是从服务器的 sent_at 到本页显示消息的时间；它假定服务器和这台电脑的时钟一致。早于本页打开的消息不计入。',
    'footer.source': 'pushlab 用全部四种方式提供同一个聊天；每种方式的代码在 web/transports/ 和 src/transport/。',
  },
};

let current = 'en';
const changeListeners = [];

export function language() {
  return current;
}

/** The language to start in: the user's last choice, else the browser's. */
export function initialLanguage(stored, browserLanguages) {
  if (LANGUAGES.includes(stored)) return stored;
  for (const tag of browserLanguages) {
    const base = String(tag).toLowerCase().split('-')[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return 'en';
}

/** One string, with {name} placeholders filled from params. */
export function t(key, params = {}) {
  const text = dictionary[current][key] ?? dictionary.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in params ? String(params[name]) : `{${name}}`));
}

export function setLanguage(lang) {
  current = LANGUAGES.includes(lang) ? lang : 'en';
  if (typeof document !== 'undefined') {
    document.documentElement.lang = current === 'zh' ? 'zh-CN' : 'en';
    apply(document);
  }
  for (const fn of changeListeners) fn(current);
}

export function onLanguageChange(fn) {
  changeListeners.push(fn);
}

/** Rewrite every data-i18n element under root in the current language. */
export function apply(root) {
  const elements = root.querySelectorAll('[data-i18n], [data-i18n-attr]');
  for (const element of elements) {
    const params = element.dataset.i18nParams ? JSON.parse(element.dataset.i18nParams) : {};
    if (element.dataset.i18n) element.textContent = t(element.dataset.i18n, params);
    if (element.dataset.i18nAttr) {
      for (const pair of element.dataset.i18nAttr.split(';')) {
        const [attribute, key] = pair.split(':');
        element.setAttribute(attribute, t(key, params));
      }
    }
  }
  if (root.title !== undefined && root === document) document.title = t('page.title');
}

/** Give an element translated text that follows language switches. */
export function translate(element, key, params) {
  element.dataset.i18n = key;
  if (params) element.dataset.i18nParams = JSON.stringify(params);
  else delete element.dataset.i18nParams;
  element.textContent = t(key, params);
  return element;
}
