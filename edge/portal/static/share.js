// Visitor pass page: "发给访客" opens the phone's share sheet (WeChat, SMS...) with the QR code
// as an image and the PIN in the text; where files cannot be shared, the text alone; without
// a share sheet the button stays hidden and "保存二维码图片" remains.
"use strict";
(function () {
  const card = document.getElementById("pass"), btn = document.getElementById("share");
  if (!card || !btn || !navigator.share) return;
  const text = card.dataset.share, title = card.dataset.title;
  btn.hidden = false;
  btn.addEventListener("click", async () => {
    const data = {title, text};
    try {
      const blob = await (await fetch(document.getElementById("pass-qr").src)).blob();
      const file = new File([blob], `${title}.png`, {type: "image/png"});
      if (navigator.canShare && navigator.canShare({files: [file]})) data.files = [file];
    } catch { /* the text alone still carries the PIN */ }
    try {
      await navigator.share(data);
      document.body.dataset.shared = data.files ? "image" : "text";
    } catch { /* the resident closed the share sheet */ }
  });
})();
