export const STRINGS = {
  en: {
    title: "Chat with us", subtitle: "We usually reply in a few minutes", open: "Open chat", close: "Close chat",
    prechatIntro: "Tell us who you are so we can get back to you.", name: "Your name", email: "Email",
    optional: "optional", required: "required", start: "Start chat", placeholder: "Type a message…",
    send: "Send", attach: "Attach a file", messages: "Messages",
    offline: "No agent online — leave a message and your email, we will get back to you.",
    busy: "All agents are busy — an agent will be with you shortly.",
    busyQueue: "All agents are busy — you are number {n} in the queue. An agent will be with you shortly.",
    save: "Save", saved: "Thanks, we will email you.", typing: "Agent is typing…",
    sending: "Sending…", retrying: "Retrying…", sent: "Sent", delivered: "Delivered", read: "Read",
    tooLarge: "The file is too large (max {size}).", uploadFailed: "The upload failed, please try again.",
    reconnecting: "Reconnecting…", unread: "{n} unread", greeting: "Hi! How can we help you?",
    you: "You", agent: "Agent", fillRequired: "Please fill in the required fields.", badEmail: "Please check the email address.",
    uploading: "Uploading {name}…",
    call: "Call", hangUp: "Hang up", calling: "Starting the call…", ringing: "Calling… waiting for an agent to answer",
    connected: "Connected · {time}", callEnded: "Call ended · {time}", callMissed: "No agent answered. Leave a message and we will get back to you.",
    callDeclined: "No agent can take the call right now. Leave a message and we will get back to you.",
    callLost: "The call was interrupted.", callFailed: "The call could not be started, please try again.",
    callBusy: "A call is already in progress.", callUnsupported: "Calls are not supported in this browser.",
    micDenied: "Microphone access was refused. Allow the microphone in your browser to call us.",
    failed: "Not sent", retry: "Retry", remove: "Delete", count: "{n} / {max} characters",
    err_text_too_long: "The message is too long (at most {limit} characters).",
    err_payload_too_large: "The message is too large to send.",
    err_rate_limited: "You are sending messages too fast. Wait a moment, then retry.",
    err_limit_reached: "You have too many open conversations. Please try again later.",
    err_conversation_closed: "This conversation is closed.",
    err_contact_erased: "Your chat history was erased. Reload the page to start a new chat.",
    err_not_found: "This conversation no longer exists. Reload the page to start a new chat.",
    err_unauthorized: "Your chat session has expired. Reload the page to continue.",
    err_forbidden: "Chat is not available right now.",
    err_unavailable: "The chat service is unavailable right now. Please try again later.",
    err_generic: "The message could not be sent. Please try again.",
    err_conflict: "That cannot be done now.", rateNotResolved: "You can rate the chat once it is resolved.",
    resolved: "This conversation was marked as resolved. Write again any time if you need more help.",
    rateTitle: "How was your chat?", stars: "{n} of 5 stars", rateComment: "Add a comment (optional)",
    rateSend: "Send rating", rateThanks: "Thank you for your feedback!", rateNeedScore: "Please choose from 1 to 5 stars.",
  },
  vi: {
    title: "Trò chuyện với chúng tôi", subtitle: "Chúng tôi thường trả lời trong vài phút", open: "Mở khung chat",
    close: "Đóng khung chat", prechatIntro: "Cho chúng tôi biết bạn là ai để tiện liên hệ lại.", name: "Tên của bạn",
    email: "Email", optional: "không bắt buộc", required: "bắt buộc", start: "Bắt đầu trò chuyện",
    placeholder: "Nhập tin nhắn…", send: "Gửi", attach: "Đính kèm tệp", messages: "Tin nhắn",
    offline: "Hiện không có nhân viên trực tuyến — hãy để lại tin nhắn và email, chúng tôi sẽ liên hệ lại.",
    busy: "Tất cả nhân viên đang bận — nhân viên sẽ trả lời bạn trong giây lát.",
    busyQueue: "Tất cả nhân viên đang bận — bạn đang ở vị trí số {n} trong hàng chờ. Nhân viên sẽ trả lời bạn trong giây lát.",
    save: "Lưu", saved: "Cảm ơn, chúng tôi sẽ gửi email cho bạn.", typing: "Nhân viên đang nhập…",
    sending: "Đang gửi…", retrying: "Đang thử lại…", sent: "Đã gửi", delivered: "Đã nhận", read: "Đã xem",
    tooLarge: "Tệp quá lớn (tối đa {size}).", uploadFailed: "Tải tệp lên thất bại, vui lòng thử lại.",
    reconnecting: "Đang kết nối lại…", unread: "{n} tin chưa đọc", greeting: "Xin chào! Chúng tôi có thể giúp gì cho bạn?",
    you: "Bạn", agent: "Nhân viên", fillRequired: "Vui lòng điền các ô bắt buộc.", badEmail: "Vui lòng kiểm tra lại email.",
    uploading: "Đang tải lên {name}…",
    call: "Gọi", hangUp: "Gác máy", calling: "Đang bắt đầu cuộc gọi…", ringing: "Đang gọi… chờ nhân viên trả lời",
    connected: "Đã kết nối · {time}", callEnded: "Cuộc gọi đã kết thúc · {time}", callMissed: "Không có nhân viên trả lời. Hãy để lại tin nhắn, chúng tôi sẽ liên hệ lại.",
    callDeclined: "Hiện chưa có nhân viên nhận cuộc gọi. Hãy để lại tin nhắn, chúng tôi sẽ liên hệ lại.",
    callLost: "Cuộc gọi bị gián đoạn.", callFailed: "Không thể bắt đầu cuộc gọi, vui lòng thử lại.",
    callBusy: "Đang có một cuộc gọi khác.", callUnsupported: "Trình duyệt này không hỗ trợ gọi điện.",
    micDenied: "Quyền dùng micro bị từ chối. Hãy cho phép micro trong trình duyệt để gọi cho chúng tôi.",
    failed: "Chưa gửi được", retry: "Thử lại", remove: "Xoá", count: "{n} / {max} ký tự",
    err_text_too_long: "Tin nhắn quá dài (tối đa {limit} ký tự).",
    err_payload_too_large: "Tin nhắn quá lớn, không gửi được.",
    err_rate_limited: "Bạn gửi tin nhắn quá nhanh. Vui lòng đợi một chút rồi thử lại.",
    err_limit_reached: "Bạn có quá nhiều cuộc trò chuyện đang mở. Vui lòng thử lại sau.",
    err_conversation_closed: "Cuộc trò chuyện này đã đóng.",
    err_contact_erased: "Lịch sử trò chuyện của bạn đã bị xoá. Hãy tải lại trang để bắt đầu cuộc trò chuyện mới.",
    err_not_found: "Cuộc trò chuyện này không còn tồn tại. Hãy tải lại trang để bắt đầu cuộc trò chuyện mới.",
    err_unauthorized: "Phiên trò chuyện đã hết hạn. Hãy tải lại trang để tiếp tục.",
    err_forbidden: "Hiện không thể trò chuyện.",
    err_unavailable: "Dịch vụ trò chuyện đang tạm ngưng. Vui lòng thử lại sau.",
    err_generic: "Không gửi được tin nhắn. Vui lòng thử lại.",
    err_conflict: "Hiện không thể thực hiện việc này.", rateNotResolved: "Bạn có thể đánh giá khi cuộc trò chuyện đã được giải quyết.",
    resolved: "Cuộc trò chuyện đã được đánh dấu là đã giải quyết. Bạn có thể nhắn lại bất cứ lúc nào nếu cần thêm hỗ trợ.",
    rateTitle: "Bạn thấy cuộc trò chuyện thế nào?", stars: "{n} trên 5 sao", rateComment: "Thêm nhận xét (không bắt buộc)",
    rateSend: "Gửi đánh giá", rateThanks: "Cảm ơn bạn đã góp ý!", rateNeedScore: "Vui lòng chọn từ 1 đến 5 sao.",
  },
};

export function pickLang(explicit, setting, navLang) {
  for (const l of [explicit, setting]) if (l && STRINGS[l]) return l;
  return String(navLang || "").toLowerCase().startsWith("vi") ? "vi" : "en";
}

// A server error (`{code, message, details}`, docs/protocol.md "Error codes") as text for the
// visitor in their language: the code's own sentence (with `details`, e.g. {limit}), or a
// generic one; the server's English `message` is never shown.
export function errorText(t, error) {
  const code = error && typeof error.code === "string" ? error.code : "";
  const key = `err_${code}`;
  return Object.prototype.hasOwnProperty.call(STRINGS.en, key) ? t(key, (error && error.details) || {}) : t("err_generic");
}

export function translator(lang) {
  const s = STRINGS[lang] || STRINGS.en;
  return (key, vars) => String(s[key] ?? key).replace(/\{(\w+)\}/g, (_, k) => (vars && vars[k] !== undefined ? vars[k] : ""));
}
