"""Departments, the concerns citizens choose (each leads to a department's queue), and
which staff members serve which department's queue."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub import validation
from hub.errors import Conflict, NotFound, ValidationError
from hub.models import Category, Department, User

MAX_DEPARTMENT_NAME = 200
MAX_CATEGORY_NAME = 120


class DepartmentService:
    """Every change to departments, categories and queue membership goes through here."""

    def list_departments(self, db: Session) -> list[Department]:
        """All departments by name."""
        return list(db.scalars(select(Department).order_by(Department.name)))

    def create_department(self, db: Session, slug: object, name: object) -> Department:
        """A new department; Conflict when the slug is taken."""
        slug = validation.slug(slug, "department_slug")
        name = validation.text(name, "department_name", max_len=MAX_DEPARTMENT_NAME)
        if db.scalar(select(Department.id).where(Department.slug == slug)) is not None:
            raise Conflict(f"a department {slug!r} exists already", "department_slug")
        department = Department(slug=slug, name=name)
        db.add(department)
        db.commit()
        return department

    def create_category(
        self, db: Session, slug: object, name_de: object, name_en: object, department: object
    ) -> Category:
        """A new concern at the end of the list, offered to citizens at once."""
        slug = validation.slug(slug, "category_slug")
        german = validation.text(name_de, "name_de", max_len=MAX_CATEGORY_NAME)
        english = validation.text(name_en, "name_en", max_len=MAX_CATEGORY_NAME, required=False)
        dept_slug = validation.slug(department, "department")
        dept = db.scalar(select(Department).where(Department.slug == dept_slug))
        if dept is None:
            raise ValidationError("department", f"no department {dept_slug!r}")
        if db.scalar(select(Category.id).where(Category.slug == slug)) is not None:
            raise Conflict(f"a category {slug!r} exists already", "category_slug")
        count = db.scalar(select(func.count(Category.id))) or 0
        category = Category(
            slug=slug,
            name_de=german,
            name_en=english,
            department_id=dept.id,
            active=True,
            position=count,
        )
        db.add(category)
        db.commit()
        return category

    def set_category_active(self, db: Session, slug: str, active: bool) -> Category:
        """Offer a concern to citizens, or stop offering it."""
        category = db.scalar(select(Category).where(Category.slug == slug))
        if category is None:
            raise NotFound(f"no category {slug!r}", "category")
        category.active = active
        db.commit()
        return category

    def set_queues(self, db: Session, user: User, slugs: Iterable[str]) -> None:
        """Make `user` serve exactly these departments' queues (unknown slugs are ignored)."""
        chosen = set(slugs)
        user.departments = [d for d in self.list_departments(db) if d.slug in chosen]
        db.commit()
