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
    # the audit log's anchor outside the database (R22)
    "audit_rolled_back": (
        "監査ログがデータベース外のチェックポイントより短くなっています"
        "（seq {seq} 以降がありません）。削除、巻き戻し、または古いバックアップ"
        "からの復元が考えられます。調査のうえ、正当な復元であれば "
        "`authsvc audit accept-rollback --reason 理由` を実行してください。",
        "The audit log is shorter than its checkpoint outside the database (rows from "
        "seq {seq} on are missing): it was deleted, rolled back or restored from an old "
        "backup. Investigate; if the restore was legitimate, run "
        "`authsvc audit accept-rollback --reason TEXT`."),
    "audit_diverged": (
        "監査ログの seq {seq} がデータベース外のチェックポイントと一致しません。"
        "ログが作り直されたか、古いバックアップからの復元後に記録が続いています。"
        "調査のうえ、正当な復元であれば "
        "`authsvc audit accept-rollback --reason 理由` を実行してください。",
        "The audit log at seq {seq} differs from its checkpoint outside the database: the "
        "log was rebuilt, or recording went on after a restore from an old backup. "
        "Investigate; if the restore was legitimate, run "
        "`authsvc audit accept-rollback --reason TEXT`."),
    "audit_unanchored": (
        "監査ログのチェックポイントが {folder} にありません。"
        "チェックポイントの場所を移した直後であれば、ログを確認のうえ "
        "`authsvc audit checkpoint --adopt` を実行してください。"
        "そうでなければ、チェックポイントのファイルを復元してください。",
        "No checkpoint of the audit log was found in {folder}. If the checkpoint folder "
        "was just moved or created, check the log and run `authsvc audit checkpoint "
        "--adopt`; otherwise restore the checkpoint files."),
    "audit_checkpoint": (
        "チェックポイントのファイルに、この監査鍵で署名されていない行があります: {lines}",
        "Lines in the checkpoint files were not signed with this service's audit key: {lines}"),
    "audit_reason_required": ("理由を入力してください。", "Please give a reason."),
    "audit_no_rollback": ("監査ログはチェックポイントより遅れていません。受け入れる巻き戻しはありません。",
                          "The audit log is not behind its checkpoint: there is no rollback to accept."),
    "audit_checkpoints_unavailable": ("チェックポイントの保存先が設定されていません。",
                                      "No checkpoint location is configured."),
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
    "invalid_json": ("リクエストの内容を読み取れませんでした。形式を確認してもう一度お試しください。",
                     "The request could not be read. Please check its format and try again."),
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
    "device_key_in_use": ("この公開鍵は機器 {device} に登録されています。1つの鍵を複数の機器IDに"
                          "登録することはできません。",
                          "This public key is registered for device {device}; one key cannot be "
                          "registered under two device IDs."),
    "device_key_revoked": ("この公開鍵は機器 {device} の失効により使用できなくなっています。"
                           "端末で新しい鍵を作成して登録してください。",
                           "This public key was retired when device {device} was revoked; please "
                           "create a new key on the terminal and register that one."),
    "device_company_unknown": ("会社「{company}」の契約が登録されていません。",
                               "No contract is registered for the company \"{company}\"."),
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
    # registration
    "registration_not_found": ("登録セッションが見つかりません。", "Registration session not found."),
    "registration_expired": ("登録セッションは操作がなかったため期限切れになりました。"
                             "もう一度開始してください。",
                             "The registration session expired after inactivity. Please start again."),
    "registration_ended": ("この登録セッションは終了しています。", "This registration session has ended."),
    "registration_wrong_step": ("この手順は現在行えません。", "This step is not possible now."),
    "registration_not_your_step": ("この手順はあなたが行うものではありません。",
                                   "This step is not yours to perform."),
    "registration_not_needed": ("手のひら静脈は登録済みです。登録は不要です。",
                                "Your palm vein is already registered. No registration is needed."),
    "registration_account_inactive": ("このアカウントは現在利用できません。", "This account is not active."),
    "registration_password_first": ("先に初期パスワードを変更してください。",
                                    "Please change your initial password first."),
    "registration_no_consent": ("遠隔登録への同意が記録されていません。登録窓口での登録をお願いします。",
                                "No consent to remote registration is recorded. "
                                "Please register in person."),
    "registration_own_only": ("ご本人のアカウントでのみ登録を開始できます。",
                              "You can only start a registration for your own account."),
    "registration_self_attend": ("登録者ご本人は立会人になれません。",
                                 "The registrant cannot attend their own registration."),
    "registration_not_admin": ("立会いは保護システム管理者のみが行えます。",
                               "Only a system administrator can attend a registration."),
    "registration_other_company": ("他社の管理者は立ち会えません。",
                                   "An administrator of another company cannot attend."),
    "registration_not_attendant": ("立会い中の管理者のみが行えます。",
                                   "Only the attending administrator can do this."),
    "registration_not_registrant": ("登録者ご本人のみが行えます。", "Only the registrant can do this."),
    "registration_image_invalid": ("身分証の画像を読み取れませんでした。もう一度撮影してください。",
                                   "The ID image could not be read. Please capture it again."),
    "registration_image_too_large": ("画像が大きすぎます（上限 {limit} MB）。",
                                     "The image is too large (limit {limit} MB)."),
    "registration_no_evidence": ("保管中の証跡画像はありません。", "No evidence image is held."),
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
    # registration pages (registrant, console)
    "vein_registration_required": ("ログオンの前に手のひら静脈の登録が必要です。"
                                   "ブラウザから登録してください。",
                                   "Your palm vein must be registered before you can log on. "
                                   "Please register it in the browser."),
    "vein_disabled": ("手のひら静脈の認証は、失敗が続いたため停止されています。"
                      "運用担当者にご連絡ください。",
                      "Palm vein authentication was stopped after repeated failures. "
                      "Please contact the operators."),
    "registration_vein_disabled": ("手のひら静脈の認証は、失敗が続いたため停止されています。"
                                   "運用担当者にご連絡ください。",
                                   "Palm vein authentication is suspended after repeated failures. "
                                   "Please contact the operators."),
    "vein_enrol_again": ("登録に十分な読み取りが得られませんでした。"
                         "もう一度ボタンを押し、手のひらを3回かざしてください。",
                         "The readings were not enough to register. Please press the button again "
                         "and place your palm three more times."),
    "vein_capture_refused": ("読み取り結果を受け付けられませんでした。もう一度お試しください。",
                             "The reading could not be accepted. Please try again."),
    "camera_unavailable": ("カメラを利用できません。接続とブラウザの許可を確認してください。",
                           "The camera is not available. Please check it and the browser's permission."),
    "station_id_check_required": ("利用者ID、確認した身分証の種類、確認済みのチェックを入力してください。",
                                  "Please enter the user ID, the kind of photo ID checked, "
                                  "and tick that you checked it."),
    "station_enrolled": ("{user_id} さんの手のひら静脈を登録しました。",
                         "The palm vein of {user_id} is enrolled."),
    "consent_recorded_yes": ("{user_id} さんの遠隔登録への同意を記録しました。",
                             "Consent to remote registration is recorded for {user_id}."),
    "consent_recorded_no": ("{user_id} さんの遠隔登録への同意を取り消しました。",
                            "Consent to remote registration is withdrawn for {user_id}."),
    "ui_register_title": ("手のひら静脈の登録", "Palm vein registration"),
    "ui_register_needed": ("ログオンするには、手のひら静脈の登録が必要です。",
                           "Your palm vein must be registered before you can log on."),
    "ui_register_remote_hint": ("所属会社の保護システム管理者の立会いのもと、この端末から登録できます。"
                                "身分証とカメラをご用意ください。",
                                "You can register from this terminal with your company's system "
                                "administrator attending. Please have your photo ID and a camera ready."),
    "ui_register_remote": ("遠隔登録を開始する", "Start remote registration"),
    "ui_register_in_person": ("遠隔登録への同意が記録されていないため、登録窓口での登録をお願いします。"
                              "身分証をお持ちください。",
                              "No consent to remote registration is recorded, so please register in "
                              "person at the registration station. Please bring your photo ID."),
    "reg_registrant_waiting": ("管理者の参加をお待ちください。",
                               "Please wait for your administrator to join."),
    "reg_registrant_joined": ("管理者が参加しました。身分証をカメラに向けて撮影してください。",
                              "Your administrator has joined. Please hold your photo ID up to the "
                              "camera and capture it."),
    "reg_registrant_id_captured": ("管理者が身分証を確認しています。お待ちください。",
                                   "Your administrator is checking your photo ID. Please wait."),
    "reg_registrant_confirmed": ("本人確認が完了しました。手のひら静脈を読み取ります。",
                                 "Your identity is confirmed. Please have your palm vein read."),
    "reg_registrant_enrolled": ("手のひら静脈を登録しました。ログオンを続けてください。",
                                "Your palm vein is registered. Please continue to log on."),
    "reg_registrant_rejected": ("本人確認ができませんでした。管理者にお問い合わせください。",
                                "Your identity could not be confirmed. Please contact your administrator."),
    "reg_registrant_stopped": ("登録を中止しました。運用担当者にお問い合わせください。",
                               "The registration was stopped. Please contact the operators."),
    "reg_registrant_closed": ("登録セッションは終了しました。", "The registration session has ended."),
    "reg_registrant_expired": ("登録セッションは操作がなかったため期限切れになりました。",
                               "The registration session expired after inactivity."),
    "reg_admin_waiting": ("管理者の参加待ち", "Waiting for an administrator"),
    "reg_admin_joined": ("立会い中：利用者が身分証を撮影するのを待っています。",
                         "Attending: waiting for the user to capture their photo ID."),
    "reg_admin_id_captured": ("身分証を撮影しました。本人と照合してください。",
                              "The photo ID is captured. Please compare it with the person."),
    "reg_admin_confirmed": ("本人確認済み：利用者が手のひら静脈を読み取るのを待っています。",
                            "Identity confirmed: waiting for the user's palm vein reading."),
    "reg_admin_enrolled": ("手のひら静脈を登録しました。登録セッションを終了してください。",
                           "The palm vein is enrolled. Please close the registration session."),
    "reg_admin_rejected": ("本人確認を却下しました。", "Identity rejected."),
    "reg_admin_stopped": ("別の本人記録と一致したため中止しました（運用担当者に通知済み）。",
                          "Stopped: the palm matched another person (the operators are alerted)."),
    "reg_admin_closed": ("終了", "Closed"),
    "reg_admin_expired": ("期限切れ", "Expired"),
    "ui_reg_attendant": ("立会い管理者", "Attending administrator"),
    "ui_reg_hold_id": ("顔写真付きの身分証をカメラに向け、「撮影する」を押してください。",
                       "Hold your photo ID up to the camera and press Capture."),
    "ui_reg_camera": ("カメラを起動する", "Start the camera"),
    "ui_reg_capture": ("撮影する", "Capture"),
    "ui_vein_enrol_hint": ("ボタンを押してから、手のひらを読み取り装置に3回かざしてください。",
                           "Press the button, then place your palm on the reader three times."),
    "ui_vein_enrol": ("手のひら静脈を読み取る", "Read the palm vein"),
    "ui_reg_continue": ("ログオンを続ける", "Continue to log on"),
    "ui_reg_back": ("登録の最初に戻る", "Back to registration"),
    "ui_console": ("管理コンソール", "Administration console"),
    "ui_console_home": ("コンソールのトップ", "Console home"),
    "ui_reg_waiting": ("参加待ちの遠隔登録", "Remote registrations waiting"),
    "ui_reg_none_waiting": ("参加待ちの登録はありません。", "No registration is waiting."),
    "ui_reg_join": ("参加する", "Join"),
    "ui_refresh": ("最新の情報に更新", "Refresh"),
    "ui_reg_attend": ("遠隔登録の立会い", "Attending a remote registration"),
    "ui_reg_compare": ("撮影された身分証と、画面の向こうの本人を照合してください。",
                       "Please compare the captured photo ID with the person."),
    "ui_reg_id_image": ("撮影された身分証", "The captured photo ID"),
    "ui_reg_confirm": ("本人と確認した", "Identity confirmed"),
    "ui_reg_reject": ("却下する", "Reject"),
    "ui_reg_reason": ("却下の理由", "Reason"),
    "ui_reg_close": ("登録セッションを終了する", "Close the registration session"),
    "ui_reg_records": ("登録の記録と証跡", "Registration records and evidence"),
    "ui_reg_evidence": ("身分証画像", "ID image"),
    "ui_station": ("登録窓口での登録（対面）", "In-person registration at the station"),
    "ui_station_document": ("確認した身分証", "Photo ID checked"),
    "ui_station_checked": ("本人と身分証を照合しました", "I compared the person with the photo ID"),
    "doc_driving_licence": ("運転免許証", "Driving licence"),
    "doc_my_number_card": ("マイナンバーカード", "My Number card"),
    "doc_passport": ("旅券", "Passport"),
    "doc_residence_card": ("在留カード", "Residence card"),
    "doc_other": ("その他の顔写真付き身分証", "Other photo ID"),
    "ui_consent": ("遠隔登録への同意の記録", "Consent to remote registration"),
    "ui_consent_yes": ("同意あり（身分証画像の撮影を含む）", "Consent given (incl. ID image capture)"),
    "ui_consent_no": ("同意なし・取消し", "No consent / withdrawn"),
    "ui_consent_record": ("記録する", "Record"),
    "role_agency_operator": ("運用担当者", "Agency operator"),
    "role_system_admin": ("保護システム管理者", "System administrator"),
    "role_account_admin": ("アカウント管理者", "Account administrator"),
    "role_staff": ("保護システム担当者", "Staff"),
    "role_data_manager": ("データ管理責任者", "Data manager"),
    "role_user": ("利用者", "User"),
    "hist_vein": ("手のひら静脈", "Palm vein"),
    "hist_unlock.vein": ("ロック解除（手のひら静脈）", "Unlock (palm vein)"),
    "hist_console": ("管理コンソールへのログオン", "Console logon"),
    "hist_console.password": ("管理コンソール（パスワード）", "Console (password)"),
    "hist_console.totp": ("管理コンソール（ワンタイムコード）", "Console (one-time code)"),
    "hist_console.webauthn": ("管理コンソール（セキュリティキー）", "Console (security key)"),
    "hist_console.vein": ("管理コンソール（手のひら静脈）", "Console (palm vein)"),
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
