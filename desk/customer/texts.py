"""The customer app's own UI strings (zh/en), read through ``desk.i18n.Tr``.

Keys double as binding descriptions, so the footer is translated too.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from desk.i18n import Table, Tr

if TYPE_CHECKING:
    from textual.dom import DOMNode

TEXTS: Table = {
    # start screen
    "app_title": {"zh": "银行在线客服", "en": "Bank online service"},
    "start_title": {"zh": "欢迎使用在线客服", "en": "Welcome to online service"},
    "start_name": {"zh": "您的称呼", "en": "Your name"},
    "start_name_placeholder": {"zh": "例如：张阿姨", "en": "e.g. Mr Wang"},
    "start_flags": {
        "zh": "演示身份（可多选，排队优先）",
        "en": "Demo flags (any; they queue first)",
    },
    "flag_elderly": {"zh": "长者", "en": "Elderly"},
    "flag_disabled": {"zh": "无障碍", "en": "Accessibility"},
    "flag_vip": {"zh": "VIP", "en": "VIP"},
    "who_flags": {"zh": "{name}（{flags}）", "en": "{name} ({flags})"},
    "flag_sep": {"zh": "、", "en": ", "},
    "start_go": {"zh": "开始咨询", "en": "Start chat"},
    "start_need_name": {"zh": "请输入您的称呼", "en": "Please enter a name"},
    # connection
    "link_connecting": {"zh": "◌ 连接中…", "en": "◌ Connecting…"},
    "link_online": {"zh": "● 已连接", "en": "● Connected"},
    "link_reconnecting": {"zh": "◌ 重连中…", "en": "◌ Reconnecting…"},
    "link_closed": {"zh": "✕ 已断开", "en": "✕ Disconnected"},
    "link_replaced": {
        "zh": "此对话已在其他窗口打开",
        "en": "This chat was opened in another window",
    },
    "link_failed": {"zh": "无法连接：{error}", "en": "Cannot connect: {error}"},
    # conversation state
    "state_connecting": {"zh": "正在接入在线客服…", "en": "Reaching the service centre…"},
    "state_bot": {
        "zh": "智能助手为您服务 · 按 F2 转人工",
        "en": "The assistant is answering · F2 for a person",
    },
    "state_queued": {"zh": "正在为您转接人工客服…", "en": "Finding you an agent…"},
    "queue_pos": {"zh": "排队中：第 {position} 位", "en": "In queue: position {position}"},
    "queue_eta": {"zh": "预计等待{eta}", "en": "estimated wait {eta}"},
    "queue_no_agent": {"zh": "暂无客服在线，请耐心等候", "en": "no agent online at the moment"},
    "eta_under_minute": {"zh": "不到 1 分钟", "en": "under a minute"},
    "eta_minutes": {"zh": "约 {n} 分钟", "en": "about {n} min"},
    "state_assigned": {"zh": "客服 {name} 为您服务", "en": "{name} is helping you"},
    "state_closed": {
        "zh": "对话已结束 · 按 F5 开始新对话",
        "en": "Chat ended · F5 starts a new one",
    },
    "state_rated": {"zh": "对话已结束 · 感谢您的评价", "en": "Chat ended · thank you for rating"},
    "typing": {"zh": "{name} 正在输入…", "en": "{name} is typing…"},
    "new_chat_started": {
        "zh": "上次对话已失效，已为您开始新的对话。",
        "en": "The previous chat expired; a new one has started.",
    },
    # transcript
    "who_me": {"zh": "我", "en": "Me"},
    "who_bot": {"zh": "智能助手", "en": "Assistant"},
    "who_agent": {"zh": "客服 {name}", "en": "{name} (agent)"},
    "who_staff": {"zh": "客服", "en": "Agent"},
    "pending": {"zh": "发送中…", "en": "sending…"},
    "failed": {"zh": "未发送（{reason}）", "en": "not sent ({reason})"},
    # composer
    "input_placeholder": {
        "zh": "请输入您的问题，按回车发送",
        "en": "Type your question, Enter to send",
    },
    "input_connecting": {"zh": "正在连接，请稍候…", "en": "Connecting, please wait…"},
    "input_closed": {"zh": "对话已结束", "en": "This chat has ended"},
    "btn_human": {"zh": "转人工", "en": "Person"},
    "btn_end": {"zh": "结束", "en": "End"},
    # bindings (footer)
    "key_human": {"zh": "转人工", "en": "Ask for a person"},
    "key_end": {"zh": "结束对话", "en": "End chat"},
    "key_rate": {"zh": "评价", "en": "Rate"},
    "key_new": {"zh": "新对话", "en": "New chat"},
    "key_quit": {"zh": "退出", "en": "Quit"},
    "key_cancel": {"zh": "取消", "en": "Cancel"},
    # notices
    "rate_later": {"zh": "可随时按 F4 评价", "en": "Press F4 to rate later"},
    "rate_thanks": {"zh": "感谢您的评价！", "en": "Thank you for your rating!"},
    # rating dialog
    "rate_title": {"zh": "请对本次服务进行评价", "en": "How was our service?"},
    "rate_very_satisfied": {"zh": "非常满意", "en": "Very satisfied"},
    "rate_satisfied": {"zh": "满意", "en": "Satisfied"},
    "rate_dissatisfied": {"zh": "不满意", "en": "Dissatisfied"},
    "rate_comment": {"zh": "留言（可选）", "en": "Comment (optional)"},
    "rate_submit": {"zh": "提交评价", "en": "Submit"},
    "rate_skip": {"zh": "暂不评价", "en": "Not now"},
    # end dialog
    "end_question": {"zh": "确定结束本次对话吗？", "en": "End this chat?"},
    "end_yes": {"zh": "结束对话", "en": "End chat"},
    "end_no": {"zh": "继续咨询", "en": "Keep chatting"},
    # hub error codes a customer can meet
    "err_too_long": {"zh": "消息太长", "en": "too long"},
    "err_invalid_state": {"zh": "对话已结束", "en": "chat ended"},
    "err_bad_frame": {"zh": "内容无效", "en": "invalid"},
    "err_unknown_conversation": {"zh": "对话已失效", "en": "chat expired"},
    "err_rate_limited": {"zh": "发送太快，请稍候", "en": "too fast, please wait"},
    "err_store_failed": {"zh": "暂存失败，正在重试", "en": "not stored, retrying"},
    "err_forbidden": {"zh": "不允许发送", "en": "not allowed"},
    "err_internal": {"zh": "服务暂时异常，正在重试", "en": "service hiccup, retrying"},
}


def localize_bindings(node: DOMNode, tr: Tr) -> None:
    """Translate this node's binding descriptions (written as TEXTS keys).

    Textual has no public API for per-instance binding text
    (Textualize/textual#1410), but each node holds its own copy of the
    bindings map, so replacing the entries here touches only this node; ids
    stay, so keymaps still apply.
    """
    table = node._bindings.key_to_bindings
    for key, bindings in list(table.items()):
        table[key] = [
            replace(b, description=tr(b.description)) if b.description else b for b in bindings
        ]
