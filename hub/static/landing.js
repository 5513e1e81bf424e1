// Shows how many characters of the description are left.
const area = document.getElementById("description");
const count = document.getElementById("description-count");
if (area && count) {
  const update = () => {
    const left = area.maxLength - area.value.length;
    count.textContent = document.documentElement.lang === "en"
      ? `${left} characters left` : `Noch ${left} Zeichen`;
  };
  area.addEventListener("input", update);
  update();
}
