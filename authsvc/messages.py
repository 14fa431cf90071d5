"""Short, polite messages in Japanese (the default) and English, keyed by stable codes."""

from __future__ import annotations

from typing import Any

LANGS = ("ja", "en")

MESSAGES: dict[str, tuple[str, str]] = {
    # password rule (R1): every rejection names the rule that failed
    "pw_too_short": ("パスワードは{min_length}文字以上にしてください。",
                     "Please use at least {min_length} characters."),
    "pw_too_long": ("パスワードは{max_length}文字以内にしてください。",
                    "Please use at most {max_length} characters."),
    "pw_classes": ("英大文字・英小文字・数字・記号のうち{min_classes}種類以上を使用してください。",
                   "Please use at least {min_classes} of: upper-case letters, lower-case letters, "
                   "digits, special characters."),
    "pw_blocklisted": ("よく使われている、または漏えいしたことのあるパスワードは使用できません。",
                       "This password is common or has appeared in a breach; please choose another."),
    "pw_contains_user_id": ("パスワードにユーザIDを含めないでください。",
                            "Please do not include your user ID in the password."),
    "pw_contains_name": ("パスワードに氏名を含めないでください。",
                         "Please do not include your name in the password."),
    "pw_repetitive": ("同じ文字や同じ並びの繰り返しは使用できません。",
                      "Please avoid repeated characters or repeated patterns."),
    "pw_sequential": ("連続した文字や数字（abcd、1234、qwerty など）は使用できません。",
                      "Please avoid sequences such as abcd, 1234 or qwerty."),
    "pw_control_chars": ("パスワードに制御文字は使用できません。",
                         "Control characters cannot be used in a password."),
    "pw_reused": ("最近使用したパスワードは使用できません（直近{history}回）。",
                  "Please do not reuse one of your last {history} passwords."),
    "pw_wrong_current": ("現在のパスワードが正しくありません。",
                         "The current password is not correct."),
    "password_rejected": ("パスワードが条件を満たしていません。",
                          "The password does not meet the rules."),
    # accounts and identifiers (R6, R7)
    "not_found": ("対象が見つかりません。", "Not found."),
    "forbidden": ("この操作を行う権限がありません。", "You are not permitted to do this."),
    "conflict": ("現在の状態ではこの操作はできません。", "This cannot be done in the current state."),
    "invalid_input": ("入力内容を確認してください。", "Please check your input."),
    "account_not_found": ("アカウント {user_id} は見つかりません。",
                          "Account {user_id} was not found."),
    "contract_not_found": ("契約 {contract} は見つかりません。", "Contract {contract} was not found."),
    "contract_exists": ("契約 {contract} は既に登録されています。",
                        "Contract {contract} is already registered."),
    "contract_ended": ("契約 {contract} は利用期間が終了しています。",
                       "Contract {contract} has ended."),
    "person_name_mismatch": ("本人記録 {person} の氏名と一致しません。",
                             "The name does not match person record {person}."),
    "person_not_found": ("本人記録 {person} は見つかりません。", "Person record {person} was not found."),
    "identifier_in_use": ("ID {user_id} は使用中です。", "ID {user_id} is in use."),
    "identifier_reserved": ("ID {user_id} は {until} まで再割当てできません。",
                            "ID {user_id} cannot be reassigned before {until}."),
    "identifier_invalid": ("ユーザIDは英数字と . _ - で3〜64文字にしてください。",
                           "A user ID has 3 to 64 characters: letters, digits, '.', '_' or '-'."),
    "identifier_not_pending": ("ユーザID {user_id} は承認待ちではありません。",
                               "User ID {user_id} is not awaiting approval."),
    "four_eyes": ("ユーザIDを割り当てた管理者自身は承認できません。",
                  "The administrator who assigned the user ID cannot approve it."),
    "bad_transition": ("アカウントの状態が「{status}」のため、この操作はできません。",
                       "This cannot be done while the account is {status}."),
    "role_unknown": ("ロール {role} は存在しません。", "There is no role {role}."),
    "name_invalid": ("氏名は1〜200文字で、制御文字を含めないでください。",
                     "A name has 1 to 200 characters and no control characters."),
    "contract_invalid": ("契約番号は英数字と . _ / - で1〜64文字にしてください。",
                         "A contract number has 1 to 64 characters: letters, digits, '.', '_', "
                         "'/' or '-'."),
    "period_invalid": ("契約期間の終了日は開始日以降にしてください。",
                       "The contract must not end before it starts."),
    # logon (R2, R4, R5): one generic failure for every reason
    "logon_failed": ("ログオンできませんでした。入力内容を確認してください。",
                     "Logon failed. Please check what you entered."),
    "password_change_required": ("初期パスワードのため、パスワードを変更してください。",
                                 "Please change your initial password before continuing."),
    "password_changed": ("パスワードを変更しました。", "Your password has been changed."),
    "pw_mismatch": ("確認用のパスワードが一致しません。", "The two new passwords do not match."),
    "second_factor_unavailable": (
        "多要素認証の設定が完了していないため、ログオンを完了できません。運用担当者にお問い合わせください。",
        "Logon cannot be completed because multi-factor authentication is not set up yet. "
        "Please contact the operators."),
    "change_expired": ("時間が経過したため、もう一度ログオンしてください。",
                       "Too much time has passed; please log on again."),
    "service_unavailable": ("ただいまサービスを利用できません。しばらくしてからお試しください。",
                            "The service is unavailable right now. Please try again later."),
    "request_invalid": ("リクエストを処理できませんでした。もう一度お試しください。",
                        "The request could not be processed. Please try again."),
    # totp
    "totp_invalid": ("確認コードが正しくありません。"
                     "認証アプリに表示されている現在のコードを入力してください。",
                     "The code is not correct. Please enter the current code shown in your "
                     "authenticator app."),
    "totp_enrol_expired": ("登録の有効期限が切れました。もう一度最初から登録してください。",
                           "The registration has expired. Please start again."),
    "totp_not_enrolled": ("ユーザID {user_id} にはワンタイムパスワードが登録されていません。",
                          "User ID {user_id} has no one-time password app registered."),
    "totp_enrolled": ("ワンタイムパスワードを登録しました。", "Your one-time password app is registered."),
    "totp_removed": ("ワンタイムパスワードの登録を削除しました。",
                     "The one-time password registration has been removed."),
    # webauthn
    "webauthn_invalid": ("セキュリティキーを確認できませんでした。もう一度お試しください。",
                         "The security key could not be verified. Please try again."),
    "webauthn_name_invalid": ("セキュリティキーの名前は{max_length}文字以内で、"
                              "制御文字を含めないでください。",
                              "A security key name has at most {max_length} characters and no "
                              "control characters."),
    "webauthn_too_many": ("登録できるセキュリティキーは{max}個までです。",
                          "You can register at most {max} security keys."),
    "webauthn_not_found": ("指定のセキュリティキーは見つかりません。", "That security key was not found."),
    "webauthn_ambiguous": ("複数のセキュリティキーが該当します。IDをもう少し長く指定してください。",
                           "More than one security key matches; please give more of its ID."),
    "webauthn_registered": ("セキュリティキーを登録しました。", "Your security key is registered."),
    "webauthn_removed": ("セキュリティキーの登録を削除しました。",
                         "The security key registration has been removed."),
    # devices (R12)
    "device_not_found": ("機器 {device} は登録されていません。", "Device {device} is not registered."),
    "device_key_invalid": ("公開鍵を読み取れません（Ed25519 の base64url または PEM）。",
                           "The public key cannot be read (Ed25519, base64url or PEM)."),
    "device_kind_invalid": ("機器の種別 {kind} は使用できません。", "There is no device kind {kind}."),
    # palm vein
    "vein_already_enrolled": ("この方の手のひら静脈は登録済みです（本人記録 {person}）。",
                              "This person's palm vein is already enrolled (person {person})."),
    "vein_more_samples": ("読み取りが不足しています。あと{needed}回読み取ってください。",
                          "More captures are needed: {needed} more, please."),
    "vein_duplicate_person": ("この手のひらは別の本人記録で登録済みです。運用担当者に連絡しました。",
                              "This palm is enrolled for another person. "
                              "The operators have been alerted."),
    "vein_place_hand": ("手のひらを読み取り装置にかざしてください。",
                        "Please hold your palm over the reader."),
    "vein_reader_error": ("読み取り装置で問題が発生しました。もう一度お試しください。",
                          "The reader had a problem. Please try again."),
    "vein_no_hand": ("手のひらが検出されませんでした。読み取り装置にかざしてください。",
                     "No palm was detected. Please hold your palm over the reader."),
    "vein_timeout": ("時間内に読み取れませんでした。もう一度お試しください。",
                     "The reading timed out. Please try again."),
    "vein_disconnected": ("読み取り装置が接続されていません。接続を確認してください。",
                          "The reader is not connected. Please check the connection."),
    "vein_not_read": ("読み取れませんでした。手のひらを平らにして、もう一度かざしてください。",
                      "The palm could not be read. Please hold it flat and try again."),
    "vein_cancelled": ("読み取りを中止しました。", "The reading was cancelled."),
    "vein_reposition": ("手の位置を調整して、もう一度かざしてください。",
                        "Please adjust your hand's position and try again."),
    "vein_busy": ("読み取り装置は使用中です。少し待ってからお試しください。",
                  "The reader is busy. Please wait a moment and try again."),
    "vein_agent_unreachable": ("この端末の読み取りサービスに接続できません。"
                               "端末の管理者にお問い合わせください。",
                               "The reader service on this terminal cannot be reached. "
                               "Please contact your terminal's administrator."),
    "ui_use_vein": ("手のひら静脈で確認する", "Confirm with my palm vein"),
    "ui_vein_hint": ("ボタンを押してから、手のひらを読み取り装置にかざしてください。",
                     "Press the button, then hold your palm over the reader."),
    # page labels
    "ui_title": ("防衛セキュリティゲートウェイ ログオン", "Defense Security Gateway logon"),
    "ui_user_id": ("ユーザID", "User ID"),
    "ui_password": ("パスワード", "Password"),
    "ui_logon": ("ログオン", "Log on"),
    "ui_new_password": ("新しいパスワード", "New password"),
    "ui_confirm_password": ("新しいパスワード（確認）", "New password (again)"),
    "ui_change": ("変更する", "Change"),
    "ui_back": ("ログオン画面へ", "Back to logon"),
    "ui_rules": ("10文字以上で、英大文字・英小文字・数字・記号のうち3種類以上を使用してください。",
                 "At least 10 characters, using at least 3 of: upper-case, lower-case, digits, "
                 "special characters."),
    "ui_other_lang": ("English", "日本語"),
    "logged_off": ("ログオフしました。", "You have logged off."),
    "ui_enrol_title": ("2つ目の認証要素を登録してください。",
                       "Please register a second authentication factor."),
    "ui_factor_title": ("2つ目の認証要素で本人確認を行います。",
                        "Please confirm it is you with your second factor."),
    "ui_totp": ("認証アプリのワンタイムコード", "One-time code from an authenticator app"),
    "ui_webauthn": ("セキュリティキー・生体認証（WebAuthn）",
                    "Security key or platform authenticator (WebAuthn)"),
    "ui_totp_scan": ("認証アプリでQRコードを読み取り、表示された6桁のコードを入力してください。",
                     "Scan the QR code with your authenticator app and enter the 6-digit code it shows."),
    "ui_totp_manual": ("読み取れない場合は次のキーを入力してください（この画面でのみ表示します）",
                       "If you cannot scan it, enter this key (shown on this screen only)"),
    "ui_code": ("コード", "Code"),
    "ui_confirm": ("確認する", "Confirm"),
    "ui_use_key": ("セキュリティキーを使用する", "Use my security key"),
    "ui_register_key": ("セキュリティキーを登録する", "Register a security key"),
    "ui_webauthn_hint": ("ボタンを押し、ブラウザの案内に従ってください。",
                         "Press the button and follow your browser's prompts."),
    "ui_home_title": ("ようこそ", "Welcome"),
    "ui_history": ("ログオン履歴", "Logon history"),
    "ui_sessions": ("有効なセッション", "Active sessions"),
    "ui_this_session": ("このセッション", "This session"),
    "ui_end_session": ("このセッションを終了", "End this session"),
    "ui_lock": ("画面をロック", "Lock"),
    "ui_logoff": ("ログオフ", "Log off"),
    "ui_locked": ("セッションはロックされています。再開するには多要素認証を行ってください。",
                  "This session is locked. Please authenticate again to continue."),
    "ui_unlock": ("ロック解除", "Unlock"),
    "ui_at": ("日時", "Time"),
    "ui_step": ("手順", "Step"),
    "ui_result": ("結果", "Result"),
    "ui_source": ("接続元", "From"),
    "ui_terminal": ("端末", "Terminal"),
    "ui_remote": ("リモート", "Remote"),
    "ui_started": ("開始", "Started"),
    "ui_last_seen": ("最終操作", "Last activity"),
    # logon history (step and result labels)
    "hist_password": ("パスワード", "Password"),
    "hist_totp": ("ワンタイムコード", "One-time code"),
    "hist_webauthn": ("セキュリティキー", "Security key"),
    "hist_complete": ("ログオン完了", "Logged on"),
    "hist_unlock": ("ロック解除", "Unlocked"),
    "hist_unlock.password": ("ロック解除（パスワード）", "Unlock (password)"),
    "hist_unlock.totp": ("ロック解除（ワンタイムコード）", "Unlock (one-time code)"),
    "hist_unlock.webauthn": ("ロック解除（セキュリティキー）", "Unlock (security key)"),
    "hist_second_factor": ("2要素目", "Second factor"),
    "hist_session": ("セッション", "Session"),
    "hist_ok": ("成功", "Succeeded"),
    "hist_failed": ("失敗", "Failed"),
    "hist_refused": ("拒否", "Refused"),
    "ui_js_needed": ("この機能にはJavaScriptが必要です。", "This needs JavaScript."),
}


def label(prefix: str, value: str, lang: str = "ja") -> str:
    """A display label for a stored value (`hist_` + "ok" ...), or the value itself."""
    return text(prefix + value, lang) if prefix + value in MESSAGES else value


def text(code: str, lang: str = "ja", **params: Any) -> str:
    ja, en = MESSAGES.get(code, MESSAGES["invalid_input"])
    template = en if lang == "en" else ja
    try:
        return template.format(**params)
    except (KeyError, IndexError):
        return template
